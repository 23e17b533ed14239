"""TelemetrySimulator: the spontaneous failure rate is a Poisson rate per asset-hour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assetwatch.features.profiles import Profile
from assetwatch.simulation import TelemetrySimulator

START_MS = 1_700_000_000_000


def _degrading_starts(labels: np.ndarray) -> int:
    """How many healthy-to-degrading transitions the (ticks, assets) labels hold."""
    padded = np.vstack([np.zeros((1, labels.shape[1]), dtype=labels.dtype), labels])
    return int((np.diff(padded, axis=0) == 1).sum())


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0, 2.5, 1e6, math.inf])
def test_any_non_negative_rate_is_accepted(cnc: Profile, rate: float) -> None:
    block = TelemetrySimulator(cnc, 3, START_MS, failure_rate_per_hour=rate).block(10)

    assert block.labels.shape == (10, 3)
    assert np.isfinite(block.values).all()


@pytest.mark.parametrize("rate", [-0.1, -math.inf, math.nan])
def test_a_negative_or_nan_rate_is_a_value_error(cnc: Profile, rate: float) -> None:
    with pytest.raises(ValueError, match="failure_rate_per_hour"):
        TelemetrySimulator(cnc, 1, START_MS, failure_rate_per_hour=rate)


def test_rate_zero_never_starts_a_degradation(cnc: Profile) -> None:
    block = TelemetrySimulator(cnc, 5, START_MS, failure_rate_per_hour=0.0).block(3_600)

    assert not block.labels.any()


def test_a_huge_rate_degrades_from_the_first_tick(cnc: Profile) -> None:
    block = TelemetrySimulator(cnc, 5, START_MS, failure_rate_per_hour=1e9).block(3)

    assert block.labels.all()


def test_starts_per_healthy_hour_match_the_rate(cnc: Profile) -> None:
    """Rate 3/h (a per-hour "probability" above 1): starts / healthy hours is about 3."""
    rate, n_assets, hours = 3.0, 40, 2.0
    sim = TelemetrySimulator(
        cnc, n_assets, START_MS, seed=11, failure_rate_per_hour=rate, ramp_s=60.0
    )
    labels = sim.block(int(hours * 3600 / cnc.reading_interval_s)).labels

    healthy_hours = float((labels == 0).sum()) * cnc.reading_interval_s / 3600
    observed = _degrading_starts(labels) / healthy_hours

    # About 230 starts expected (sd about 15), so 30 % is four and a half sd; the seed is fixed.
    assert observed == pytest.approx(rate, rel=0.3)


def test_failing_assets_start_degrading_when_told(cnc: Profile) -> None:
    sim = TelemetrySimulator(cnc, 3, START_MS, failing=[1], failing_from_s=300, ramp_s=100)
    labels = sim.block(450).labels

    assert not labels[:300].any()
    assert labels[300:400, 1].all() and not labels[400:, 1].any()
    assert not labels[:, [0, 2]].any()
