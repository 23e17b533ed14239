"""Compile a module tree's bytecode in a short-lived child while another process starts.

pip compiles every installed module at install time; uv (what ``make install`` uses) leaves
that to the first import. On a fresh install the demo's worker would then compile faust and
MLflow, and after them scikit-learn, SciPy and ONNX for its first-run training, one after
the other on one core. Importing the training modules in a child meanwhile compiles them on
the other core, so the worker finds their bytecode written. Nothing else is shared: the child
imports and exits.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from assetwatch.agents.local.broker import stop_process


def compiled(package: str) -> bool:
    """True when top-level ``package`` has its bytecode, or is not a source file.

    Top-level only: finding ``a.b`` would import ``a`` here, compiling it in this process.
    """
    if "." in package:
        raise ValueError(f"{package!r}: a top-level package, not a submodule")
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return True
    return Path(importlib.util.cache_from_source(spec.origin)).exists()


class BytecodeWarmup:
    """Imports ``modules`` in a child while package ``probe`` has no bytecode yet.

    Not under PYTHONDONTWRITEBYTECODE, where the child would compile for nothing.
    """

    def __init__(self, modules: list[str], probe: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if sys.dont_write_bytecode or compiled(probe):
            return
        self.process = subprocess.Popen(
            [sys.executable, "-c", "; ".join(f"import {m}" for m in modules)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # a Ctrl-C is for the demo; it ends the child itself

    def close(self) -> None:
        """End the child if it is still importing."""
        if self.process is not None:
            stop_process(self.process, 1.0, kill=True)

    def __enter__(self) -> BytecodeWarmup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
