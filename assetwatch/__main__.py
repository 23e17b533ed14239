"""``python -m assetwatch`` is the ``assetwatch`` command."""

import sys

from assetwatch.cli import main

sys.exit(main())
