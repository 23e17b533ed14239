"""Training beyond the time split: normal-only data, held-out assets, per-asset baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile
from assetwatch.features.readings import read_labelled_readings, read_normal_readings
from assetwatch.models.training import train_models
from assetwatch.models.validation import baseline_metrics, held_out_assets
from tests.data import SKAB_DIR, SKAB_VALVE1

ANOMALY_FREE = SKAB_DIR / "anomaly-free" / "anomaly-free.csv"


def test_a_file_without_labels_reads_as_normal_when_told(pump: Profile) -> None:
    with pytest.raises(ConfigError, match="no label column"):
        read_labelled_readings(ANOMALY_FREE, pump)

    readings = read_normal_readings(ANOMALY_FREE, pump)

    assert len(readings) > 9_000 and (readings["label"] == 0).all()
    assert set(readings["asset_id"]) == {"pump-anomaly-free-anomaly-free"}


def test_normal_only_readings_train_the_detector_and_a_classifier_that_sees_no_failure(
    pump: Profile,
) -> None:
    readings = read_normal_readings(ANOMALY_FREE, pump).iloc[:3_000]

    result = train_models(pump, readings, trees=10, seed=0, trials=3)

    scores = result.bundle.score(np.zeros((4, len(pump.feature_names))))
    assert (scores.failure_probability == 0.0).all()
    assert result.metrics["normal_only"] == 1.0
    assert result.params["trials"] == 0  # nothing to search a classifier on
    assert 0.0 <= result.metrics["anomaly_rate"] <= 0.2


@pytest.fixture(scope="module")
def valve1(pump: Profile) -> pd.DataFrame:
    return pd.concat([read_labelled_readings(SKAB_VALVE1 / f"{i}.csv", pump, "anomaly")
                      for i in range(4)], ignore_index=True)


def test_the_classifier_is_judged_on_assets_it_never_saw(
    valve1: pd.DataFrame, pump: Profile
) -> None:
    result = train_models(pump, valve1, trees=10, seed=0, validate_assets=True)

    assert result.metrics["held_out_assets"] == 1.0
    assert 0.0 <= result.metrics["assets_f1"] <= 1.0
    assert "assets_roc_auc" in result.metrics
    assert "baseline_f1" in result.metrics and "baseline_far" in result.metrics


def test_held_out_validation_needs_two_assets() -> None:
    x, y = np.zeros((10, 2)), np.array([0, 1] * 5)

    assert held_out_assets(x, y, np.array(["a"] * 10), {"n_estimators": 3}, 0) == {}


def test_baseline_metrics_are_those_of_the_streaming_rule(
    valve1: pd.DataFrame, pump: Profile
) -> None:
    """Each asset calibrates on its first 400 readings; alarms are score > threshold."""
    metrics = baseline_metrics(valve1, pump)

    assert metrics["baseline_rows"] == len(valve1) - 4 * pump.baseline.calibration_readings
    assert metrics["baseline_f1"] > 0.5 and metrics["baseline_far"] < 0.1


def test_cli_trains_on_a_normal_only_file(tmp_path: Path) -> None:
    from assetwatch.cli import build_parser

    args = build_parser().parse_args(["train", "--profile", "pump", "--normal-input",
                                      str(ANOMALY_FREE)])

    assert [Path(p) for p in args.normal_input] == [ANOMALY_FREE]
