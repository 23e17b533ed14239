"""What a worker checks before serving a model version."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from assetwatch.errors import ModelRejectedError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ModelBundle, ScoringModel
from assetwatch.models.checks import check_servable, reference_features


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
    "features in another order": (_reversed, "different features"),
    "a feature missing": (
        lambda b: dataclasses.replace(b, feature_names=b.feature_names[:-1]),
        "different features",
    ),
    "another profile": (lambda b: dataclasses.replace(b, profile="pump"), "profile 'pump'"),
    "a detector that cannot load": (
        lambda b: dataclasses.replace(b, detector_onnx=b"not an onnx model"),
        "failed to score",
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
    detector = copy.deepcopy(cnc_model.bundle.detector)
    detector.offset_ = float("nan")  # the threshold the anomaly score is taken against
    broken = dataclasses.replace(
        cnc_model, bundle=dataclasses.replace(cnc_model.bundle, detector=detector))
    with pytest.raises(ModelRejectedError, match="non-finite"):
        check_servable(broken, cnc, reference)
