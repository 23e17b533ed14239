"""Training: labelled readings (synthetic or from a file) -> offline features -> two forests.

The bundle's drift reference describes what serving will compare against it: normal rows with
every window complete, scored by forests *not* fitted on them. In-sample outputs are far more
confident (a fitted forest gives its own healthy rows a failure probability of exactly 0) and
a failure-enriched training mix holds outputs a healthy fleet never gives: both made a healthy
demo fleet raise drift on ``output:failure_probability`` (tests/integration/test_demo_drift.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from assetwatch.errors import ConfigError
from assetwatch.features.offline import compute_features, windows_complete
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import BatchScores, DetectorScale, ModelBundle
from assetwatch.models.compiled import classifier_to_onnx, isolation_forest_to_onnx
from assetwatch.models.reference import ANOMALY_SCORE, FAILURE_PROBABILITY, FeatureReference
from assetwatch.models.search import Trial, choose
from assetwatch.models.validation import baseline_metrics, held_out_assets
from assetwatch.settings import Settings
from assetwatch.simulation import START_MS, TelemetrySimulator, synthetic_fleet

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.25
REFERENCE_S = 1800.0
"""Seconds of complete-window readings per asset in a synthetic drift reference fleet."""
REFERENCE_SEED = 1_000_003
"""Added to the training seed for the reference fleet: other assets, other noise."""


@dataclass(frozen=True)
class Validation:
    """Labels and failure probabilities of the validation rows, for plots."""

    labels: np.ndarray
    failure_probability: np.ndarray


@dataclass(frozen=True)
class Estimators:
    """The fitted scikit-learn forests the bundle was compiled from.

    For people (feature importances, a pickle for notebooks), never for serving.
    """

    detector: IsolationForest
    classifier: RandomForestClassifier


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced: the bundle, its metrics and how it was found."""

    bundle: ModelBundle
    metrics: dict[str, float]
    params: dict[str, Any]
    validation: Validation | None = None
    trials: tuple[Trial, ...] = ()
    """The hyper-parameter search's trials, in order (none when no search ran)."""
    estimators: Estimators | None = None


@dataclass(frozen=True)
class Split:
    """Feature rows ordered by event time: the earlier part trains, the later validates."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    train_end_ms: int
    """Newest training reading; every validation reading is at least as new."""
    validation_start_ms: int
    validation_index: np.ndarray | None = None
    """Positions of the validation rows in the arrays given to :func:`time_split`."""


def time_split(features: np.ndarray, labels: np.ndarray, timestamps: np.ndarray,
               validation_fraction: float = VALIDATION_FRACTION,
               need_both: bool = True) -> Split:
    """Sort by timestamp (stable) and cut: the last ``validation_fraction`` validates.

    ``need_both`` refuses a training part without failure and normal readings; normal-only
    data (``need_both=False``) trains the detector alone.
    """
    order = np.argsort(timestamps, kind="stable")
    x, y, ts = features[order], labels[order], timestamps[order]
    cut = int(len(x) * (1 - validation_fraction))
    if cut == 0 or cut == len(x):
        raise ConfigError(f"{len(x)} readings are too few to split for validation")
    if need_both and len(set(y[:cut].tolist())) < 2:
        raise ConfigError(f"the training part (before {int(ts[cut])} ms) has only label "
                          f"{int(y[0])}: it needs failure (1) and normal (0) readings")
    return Split(x[:cut], y[:cut], x[cut:], y[cut:], int(ts[cut - 1]), int(ts[cut]),
                 order[cut:])


def synthetic_readings(profile: Profile, n_assets: int, hours: float, seed: int) -> pd.DataFrame:
    """:func:`~assetwatch.simulation.synthetic_fleet` as a DataFrame of labelled readings."""
    fleet = synthetic_fleet(profile, n_assets, hours, seed)
    frame = pd.DataFrame(fleet.values, columns=list(profile.sensor_names))
    frame.insert(0, "timestamp", fleet.timestamps)
    frame.insert(0, "asset_id", fleet.asset_ids)
    frame["label"] = fleet.labels
    return frame


def synthetic_reference(profile: Profile, n_assets: int, seed: int) -> pd.DataFrame:
    """Healthy readings of assets the forests never saw, for the drift reference.

    Each asset runs until its windows are complete, then :data:`REFERENCE_S` seconds more.
    """
    ticks = int((profile.windows_complete_s + REFERENCE_S) / profile.reading_interval_s)
    sim = TelemetrySimulator(profile, n_assets, START_MS, seed=seed + REFERENCE_SEED,
                             asset_prefix=f"{profile.name}-reference")
    block = sim.block(ticks)
    frame = pd.DataFrame(block.values.reshape(ticks * n_assets, -1),
                         columns=list(profile.sensor_names))
    frame.insert(0, "timestamp", np.repeat(block.timestamps, n_assets))
    frame.insert(0, "asset_id", np.tile(np.array(block.asset_ids), ticks))
    frame["label"] = 0
    return frame


def train_models(
    profile: Profile, readings: pd.DataFrame, trees: int = 100, seed: int = 0, *, trials: int = 0,
    validate_assets: bool = False, reference: pd.DataFrame | None = None,
) -> TrainingResult:
    """Fit the detector on normal readings and the classifier on all, time-ordered split.

    ``readings`` has asset_id, timestamp (ms), the profile's sensors and a 0/1 ``label``.
    With ``trials`` > 0 the classifier's hyper-parameters and the detector's contamination
    are first searched on the validation split (:mod:`assetwatch.models.search`). With
    ``validate_assets`` the classifier is also judged on held-out assets (one more fit), and
    the per-asset baselines on every labelled asset.
    Readings with no failure at all train the detector only. The drift reference comes from
    ``reference`` (readings the forests are not fitted on, normal unless labelled), else from
    the validation split's normal rows; either way only rows with every window complete.
    """
    started = time.perf_counter()
    log.info("computing %d features for %d readings", len(profile.feature_names), len(readings))
    features = compute_features(readings, profile)
    labels = readings["label"].to_numpy(dtype=int)
    normal_only = not labels.any()
    if normal_only:
        log.warning("the readings are all normal: the detector is fitted unsupervised and the "
                    "failure classifier learns no failure (failure_probability 0)")
        trials = 0  # the search's objective, the classifier's F1, means nothing here
    split = time_split(features.to_numpy(dtype=float), labels,
                       readings["timestamp"].to_numpy(dtype=np.int64), need_both=not normal_only)
    train, val = (split.x_train, split.y_train), (split.x_val, split.y_val)
    healthy = split.x_train[split.y_train == 0]
    choice = choose(train, val, healthy, trials, trees, seed)
    log.info("fitting IsolationForest (%d trees, contamination %.3f) on %d healthy rows",
             trees, choice.contamination, len(healthy))
    detector = IsolationForest(n_estimators=trees, contamination=choice.contamination,
                               random_state=seed, n_jobs=-1).fit(healthy)
    bundle = _bundle(profile, detector, choice.classifier, split.x_train)
    rows, reference_source = _reference_rows(profile, readings, features, labels, split,
                                             reference)
    bundle = dataclasses.replace(bundle, reference=_drift_reference(bundle, rows))
    scores = bundle.score(split.x_val)
    metrics = {**_evaluate(split.y_val, scores), **choice.metrics, **_counts(split),
               **(held_out_assets(features.to_numpy(dtype=float), labels,
                                  readings["asset_id"].to_numpy(),
                                  {"n_estimators": trees, **choice.classifier_params}, seed)
                  | baseline_metrics(readings, profile) if validate_assets else {}),
               "normal_only": float(normal_only), "reference_rows": float(len(rows)),
               "training_seconds": time.perf_counter() - started}
    params = {"profile": profile.name, "trees": trees, "seed": seed, "trials": trials,
              **choice.classifier_params, "detector_trees": trees,
              "contamination": choice.contamination,
              "validation_fraction": VALIDATION_FRACTION, "train_end_ms": split.train_end_ms,
              "validation_start_ms": split.validation_start_ms,
              "drift_reference": reference_source}
    validation = Validation(split.y_val, scores.failure_probability)
    return TrainingResult(bundle, metrics, params, validation, choice.trials,
                          Estimators(detector, choice.classifier))


def _bundle(profile: Profile, detector: IsolationForest, classifier: RandomForestClassifier,
            x_train: np.ndarray) -> ModelBundle:
    detector.set_params(n_jobs=1)
    classifier.set_params(n_jobs=1)  # serving scores one batch per call; no process pool
    std = x_train.std(axis=0)
    n_features = x_train.shape[1]
    bundle = ModelBundle(
        profile=profile.name,
        feature_names=profile.feature_names,
        feature_mean=x_train.mean(axis=0),
        feature_std=np.where(std > 0, std, 1.0),
        detector_onnx=isolation_forest_to_onnx(detector, n_features),
        classifier_onnx=classifier_to_onnx(classifier, n_features),
        detector_scale=DetectorScale(len(detector.estimators_), float(detector.max_samples_),
                                     float(detector.offset_)),
        classes=tuple(int(c) for c in classifier.classes_),
    )
    return bundle


def _reference_rows(profile: Profile, readings: pd.DataFrame, features: pd.DataFrame,
                    labels: np.ndarray, split: Split, reference: pd.DataFrame | None
                    ) -> tuple[np.ndarray, str]:
    """Feature rows of the drift reference (normal, windows complete, not fitted on); source."""
    if reference is not None:
        normal = (reference["label"].to_numpy(dtype=int) == 0 if "label" in reference
                  else np.ones(len(reference), dtype=bool))
        keep = normal & windows_complete(reference, profile)
        rows = compute_features(reference, profile).to_numpy(dtype=float)[keep]
        return rows, f"{int(keep.sum())} normal complete-window rows of reference readings"
    held_out = np.zeros(len(readings), dtype=bool)
    held_out[split.validation_index if split.validation_index is not None else []] = True
    keep = held_out & (labels == 0) & windows_complete(readings, profile)
    rows = features.to_numpy(dtype=float)[keep]
    return rows, f"{int(keep.sum())} normal complete-window validation rows"


def _drift_reference(bundle: ModelBundle, rows: np.ndarray) -> FeatureReference | None:
    if len(rows) == 0:
        log.warning("no normal complete-window rows outside training: %s will serve without "
                    "drift detection", bundle.profile)
        return None
    return training_reference(bundle, rows)


def training_reference(bundle: ModelBundle, rows: np.ndarray) -> FeatureReference:
    """Bin edges and shares of ``rows``' features and of the bundle's outputs on them.

    ``rows`` should be rows the bundle was not fitted on (see the module docstring).
    """
    scores = bundle.score(rows)
    columns = np.column_stack([rows, scores.anomaly_score, scores.failure_probability])
    return FeatureReference.from_rows(
        (*bundle.feature_names, ANOMALY_SCORE, FAILURE_PROBABILITY), columns)


def _evaluate(y_val: np.ndarray, scores: BatchScores) -> dict[str, float]:
    predicted = scores.failure_probability >= 0.5
    metrics = {
        "f1": f1_score(y_val, predicted, zero_division=0),
        "precision": precision_score(y_val, predicted, zero_division=0),
        "recall": recall_score(y_val, predicted, zero_division=0),
        "anomaly_rate": float(scores.is_anomaly.mean()),
        "anomaly_recall": recall_score(y_val, scores.is_anomaly, zero_division=0),
    }
    if len(set(y_val.tolist())) == 2:  # both curves need both classes
        metrics["roc_auc"] = roc_auc_score(y_val, scores.failure_probability)
        metrics["pr_auc"] = average_precision_score(y_val, scores.failure_probability)
    return {k: float(v) for k, v in metrics.items()}


def _counts(split: Split) -> dict[str, float]:
    return {
        "samples": float(len(split.x_train) + len(split.x_val)),
        "train_rows": float(len(split.x_train)),
        "validation_rows": float(len(split.x_val)),
        "train_positives": float(split.y_train.sum()),
        "validation_positives": float(split.y_val.sum()),
        "feature_count": float(split.x_train.shape[1]),
    }


def train_baseline(settings: Settings, profile: Profile, readings: pd.DataFrame | None = None,
                   source: str | None = None) -> TrainingResult:
    """Train as configured on ``readings`` (default: synthetic ones) via :func:`train_models`.

    ``source`` names where the readings came from (a logged parameter).
    """
    from_files = readings is not None
    reference = None
    if readings is None:
        readings = synthetic_readings(
            profile, settings.train_assets, settings.train_hours, settings.seed
        )
        reference = synthetic_reference(profile, settings.train_assets, settings.seed)
        source = source or f"synthetic: {settings.train_assets} assets x {settings.train_hours} h"
    result = train_models(profile, readings, trees=settings.train_trees, seed=settings.seed,
                          trials=settings.train_trials, validate_assets=from_files,
                          reference=reference)
    return dataclasses.replace(result, params={**result.params, "data": source or "readings"})
