"""What a worker checks before serving a model version."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from assetwatch.errors import ModelRejectedError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ModelBundle, ScoringModel
from assetwatch.models.checks import check_servable, full_range_features, reference_features


@pytest.fixture(scope="module")
def reference(cnc: Profile) -> np.ndarray:
    return reference_features(cnc)


def test_reference_rows_have_the_profile_features_and_are_finite(
    cnc: Profile, cnc_model: ScoringModel, reference: np.ndarray
) -> None:
    assert reference.shape[1] == len(cnc_model.bundle.feature_names)
    assert len(reference) > 1000
    assert np.isfinite(reference).all()


def test_a_trained_model_passes(
    cnc: Profile, cnc_model: ScoringModel, reference: np.ndarray
) -> None:
    check_servable(cnc_model, cnc, reference)


def _reversed(bundle: ModelBundle) -> ModelBundle:
    return dataclasses.replace(bundle, feature_names=tuple(reversed(bundle.feature_names)))


BROKEN: dict[str, tuple[Callable[[ModelBundle], ModelBundle], str]] = {
    "features in another order": (_reversed, "^features: .*different features"),
    "a feature missing": (
        lambda b: dataclasses.replace(b, feature_names=b.feature_names[:-1]),
        "^features: .*different features",
    ),
    "another profile": (lambda b: dataclasses.replace(b, profile="pump"),
                        "^features: .*profile 'pump'"),
    "a detector that cannot load": (
        lambda b: dataclasses.replace(b, detector_onnx=b"not an onnx model"),
        "^score reference: .*failed to score",
    ),
}


@pytest.mark.parametrize("breakage", BROKEN.values(), ids=list(BROKEN))
def test_a_broken_model_is_rejected_with_the_reason(
    cnc: Profile, cnc_model: ScoringModel, reference: np.ndarray,
    breakage: tuple[Callable[[ModelBundle], ModelBundle], str],
) -> None:
    breaker, reason = breakage
    broken = dataclasses.replace(cnc_model, version="9", bundle=breaker(cnc_model.bundle))
    with pytest.raises(ModelRejectedError, match=reason) as caught:
        check_servable(broken, cnc, reference)
    assert "version 9" in str(caught.value)


def test_non_finite_scores_are_rejected(
    cnc: Profile, cnc_model: ScoringModel, reference: np.ndarray
) -> None:
    scale = dataclasses.replace(cnc_model.bundle.detector_scale, offset=float("nan"))
    broken = dataclasses.replace(
        cnc_model, bundle=dataclasses.replace(cnc_model.bundle, detector_scale=scale))
    with pytest.raises(ModelRejectedError, match=r"^finite scores: .*non-finite") as caught:
        check_servable(broken, cnc, reference)
    assert caught.value.step == "finite scores"


def test_full_range_reference_spans_every_sensors_legal_range(cnc: Profile) -> None:
    rows = full_range_features(cnc)
    for sensor in cnc.sensors:
        column = rows[:, cnc.feature_names.index(sensor.name)]
        assert (column.min(), column.max()) == (sensor.min, sensor.max), sensor.name
    assert np.isfinite(rows).all()


def test_a_constant_model_is_rejected_as_degenerate(
    cnc: Profile, constant_model: ScoringModel, reference: np.ndarray
) -> None:
    with pytest.raises(ModelRejectedError, match="constant failure probability") as caught:
        check_servable(constant_model, cnc, reference)
    assert caught.value.step == "degenerate output"
    assert "0.98" in str(caught.value)


def test_a_model_nan_above_vibration_20_is_rejected_on_the_full_range(
    cnc: Profile, nan_above_vibration_model: ScoringModel, reference: np.ndarray
) -> None:
    realistic = reference_features(cnc)[: len(reference) - len(full_range_features(cnc))]
    assert realistic[:, cnc.feature_names.index("vibration")].max() < 20  # the old blind spot
    check_servable(nan_above_vibration_model, cnc, realistic)

    with pytest.raises(ModelRejectedError, match="non-finite") as caught:
        check_servable(nan_above_vibration_model, cnc, reference)
    assert caught.value.step == "finite scores"
    vibration = float(str(caught.value).split("'vibration': ")[1].split(",")[0])
    assert vibration > 20.0
