"""The demo's bytecode warm-up: when a package counts as compiled, and when no child starts."""

from __future__ import annotations

import py_compile
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetwatch.agents.local.bytecode import BytecodeWarmup, compiled


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh top-level package ``freshpkg`` with no bytecode, importable from tmp_path."""
    init = tmp_path / "freshpkg" / "__init__.py"
    init.parent.mkdir()
    init.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield init
    sys.modules.pop("freshpkg", None)


def test_a_package_counts_as_compiled_once_its_bytecode_exists(package: Path) -> None:
    assert not compiled("freshpkg")
    py_compile.compile(str(package))
    assert compiled("freshpkg")
    assert "freshpkg" not in sys.modules  # looked up, not imported


def test_unknown_and_builtin_modules_need_no_warm_up() -> None:
    assert compiled("no_such_package_here")
    assert compiled("sys")


def test_a_submodule_probe_is_refused_since_finding_it_imports_its_parent() -> None:
    with pytest.raises(ValueError, match="top-level"):
        compiled("sklearn.ensemble")


def test_no_child_where_python_writes_no_bytecode(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with BytecodeWarmup(["freshpkg"], probe="freshpkg") as warmup:
        assert warmup.process is None


def test_the_child_imports_and_leaves_the_bytecode(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setenv("PYTHONPATH", str(package.parent.parent))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    warmup = BytecodeWarmup(["freshpkg"], probe="freshpkg")
    assert warmup.process is not None
    assert warmup.process.wait(60) == 0
    warmup.close()
    assert compiled("freshpkg")
