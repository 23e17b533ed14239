"""Where the tests find the shared SKAB data: ../shared beside the checkout.

``ASSETWATCH_SHARED_DIR`` overrides the location. The data is read in place, never copied.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR = Path(
    os.environ.get("ASSETWATCH_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
SKAB_DIR = SHARED_DIR / "data" / "skab"
SKAB_VALVE1 = SKAB_DIR / "valve1"
