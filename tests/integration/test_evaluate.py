"""``assetwatch evaluate`` on two SKAB files, through a real broker and a worker subprocess.

Plumbing only: every reading gets exactly one outcome and the report adds up. Detection
quality is not asserted here (it is the detector's business, measured with this verb).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from assetwatch.cli import main
from assetwatch.settings import Settings
from tests.data import SKAB_VALVE1
from tests.integration.conftest import settings_env

pytestmark = pytest.mark.integration

SKAB = [SKAB_VALVE1 / name for name in ("1.csv", "2.csv")]
SKIP = 400


def test_evaluate_accounts_for_every_skab_reading(
    make_settings: Callable[..., Settings], registered_models: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    # --external: the session's broker (a real cluster in CI when KAFKA_BOOTSTRAP_SERVERS
    # is set); bootstrap_model is off, so the worker must load the registered pump model.
    settings = make_settings(profiles=("pump",))
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")

    status = main(["evaluate", *map(str, SKAB), "--external", "--json", "--plot",
                   str(tmp_path / "plots"), "--timeout", "90"])

    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, "--json prints only the JSON line"
    report = json.loads(out[0])
    assert status == 0 and report["complete"] and not report["timed_out"]
    assert [f["asset_id"] for f in report["files"]] == ["pump-valve1-1", "pump-valve1-2"]
    for row, path in zip(report["files"], SKAB, strict=True):
        readings = len(pd.read_csv(path, sep=";"))
        assert row["readings"] == readings
        assert (row["missing"], row["duplicates"], row["dead_letters"]) == (0, 0, 0)
        assert row["rows"] == readings - SKIP - row["calibrating"]
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == row["rows"]
        _check_ratios(row)
    pooled = report["pooled"]
    assert pooled["rows"] == sum(f["rows"] for f in report["files"])
    for count in ("tp", "fp", "fn", "tn"):
        assert pooled[count] == sum(f[count] for f in report["files"])
    _check_ratios(pooled)
    assert report["auc"]["anomaly_score"] is not None
    assert report["models"] == [f"assetwatch-pump@{registered_models['pump']}"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "pump-valve1-1.png", "pump-valve1-2.png"]


def _check_ratios(row: dict[str, Any]) -> None:
    """F1 and the false-alarm rate are the ones the row's own counts give."""
    tp, fp, fn, tn = row["tp"], row["fp"], row["fn"], row["tn"]
    assert row["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    assert row["far"] == (pytest.approx(fp / (fp + tn)) if fp + tn else None)
