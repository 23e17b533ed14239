"""The ``assetwatch`` command: parse the verb, load the settings, run it (:func:`main`).

The parser is in :mod:`assetwatch.cli.parser`, each verb's code in :mod:`assetwatch.cli.verbs`,
the ``--help`` texts in :mod:`assetwatch.cli.help`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from assetwatch.cli.parser import build_parser
from assetwatch.errors import AssetwatchError
from assetwatch.extras import require_extras, requires
from assetwatch.settings import Settings

__all__ = ["VERB_EXTRAS", "build_parser", "main"]

log = logging.getLogger("assetwatch")

VERB_EXTRAS = {"demo": ("train", "local"), "broker": ("local",), "evaluate": ("train",),
               "train": ("train",), "replay": ("train",)}
"""Verb -> the extras it needs; the others (worker, promote, simulate...) need only core."""


def main(argv: list[str] | None = None) -> int:
    """Run the verb ``argv`` names; returns the exit status (2: invalid settings)."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"assetwatch: invalid settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # mlflow probes git otherwise
    try:
        require_extras(VERB_EXTRAS.get(args.verb, ()), f"assetwatch {args.verb}")
        with contextlib.ExitStack() as needs:  # and if a module of one is missing all the same
            for extra in VERB_EXTRAS.get(args.verb, ()):
                needs.enter_context(requires(extra, f"assetwatch {args.verb}"))
            return int(args.run(settings, args))
    except AssetwatchError as exc:
        print(f"assetwatch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
