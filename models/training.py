"""Baseline training: synthetic labelled telemetry -> offline features -> two forests."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from assetwatch.settings import Settings
from assetwatch.simulation import TelemetrySimulator
from features.offline import compute_features
from features.profiles import Profile
from models.bundle import ModelBundle
from models.compiled import classifier_to_onnx, isolation_forest_to_onnx
from models.reference import ANOMALY_SCORE, FAILURE_PROBABILITY, FeatureReference

log = logging.getLogger(__name__)

VALIDATION_FRACTION = 0.25
START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class TrainingResult:
    bundle: ModelBundle
    metrics: dict[str, float]
    params: dict[str, Any]


def synthetic_readings(profile: Profile, n_assets: int, hours: float, seed: int) -> pd.DataFrame:
    """Labelled readings: half the assets go through degradation ramps that end in failure."""
    sim = TelemetrySimulator(
        profile, n_assets, START_MS, seed=seed, failure_rate_per_hour=0.9, ramp_s=1200.0
    )
    # Healthy assets never start a ramp: keep half the fleet as a clean reference.
    block = sim.block(int(hours * 3600 / profile.reading_interval_s))
    n_ticks, n = block.values.shape[:2]
    healthy = np.arange(n) % 2 == 0
    labels = block.labels.copy()
    values = block.values.copy()
    if healthy.any():
        clean = TelemetrySimulator(profile, n, START_MS, seed=seed + 1).block(n_ticks)
        values[:, healthy, :] = clean.values[:, healthy, :]
        labels[:, healthy] = 0
    frame = pd.DataFrame(
        values.reshape(n_ticks * n, -1), columns=list(profile.sensor_names)
    )
    frame.insert(0, "timestamp", np.repeat(block.timestamps, n))
    frame.insert(0, "asset_id", np.tile(np.array(block.asset_ids), n_ticks))
    frame["label"] = labels.reshape(-1)
    return frame


def train_models(
    profile: Profile, readings: pd.DataFrame, trees: int = 100, seed: int = 0
) -> TrainingResult:
    """Fit the detector on normal readings and the classifier on all, time-ordered split."""
    started = time.perf_counter()
    log.info("computing %d features for %d readings", len(profile.feature_names), len(readings))
    features = compute_features(readings, profile)
    order = np.argsort(readings["timestamp"].to_numpy(), kind="stable")
    x_all = features.to_numpy(dtype=float)[order]
    y_all = readings["label"].to_numpy(dtype=int)[order]
    cut = int(len(x_all) * (1 - VALIDATION_FRACTION))
    x_train, y_train, x_val, y_val = x_all[:cut], y_all[:cut], x_all[cut:], y_all[cut:]

    log.info("fitting IsolationForest and RandomForest (%d trees) on %d rows", trees, cut)
    detector = IsolationForest(
        n_estimators=trees, contamination=0.01, random_state=seed, n_jobs=-1
    ).fit(x_train[y_train == 0])
    classifier = RandomForestClassifier(
        n_estimators=trees, max_depth=10, class_weight="balanced", random_state=seed, n_jobs=-1
    ).fit(x_train, y_train)
    detector.set_params(n_jobs=1)
    classifier.set_params(n_jobs=1)  # serving scores one batch per call; no process pool
    std = x_train.std(axis=0)
    bundle = ModelBundle(
        profile=profile.name,
        feature_names=profile.feature_names,
        detector=detector,
        classifier=classifier,
        feature_mean=x_train.mean(axis=0),
        feature_std=np.where(std > 0, std, 1.0),
        detector_onnx=isolation_forest_to_onnx(detector, x_all.shape[1]),
        classifier_onnx=classifier_to_onnx(classifier, x_all.shape[1]),
    )
    bundle = dataclasses.replace(bundle, reference=training_reference(bundle, x_train))
    metrics = _evaluate(bundle, x_val, y_val)
    metrics.update(
        train_rows=float(cut), validation_rows=float(len(x_val)),
        feature_count=float(x_all.shape[1]), training_seconds=time.perf_counter() - started,
    )
    params = {"profile": profile.name, "trees": trees, "max_depth": 10, "seed": seed,
              "contamination": 0.01, "validation_fraction": VALIDATION_FRACTION}
    return TrainingResult(bundle, metrics, params)


def training_reference(bundle: ModelBundle, rows: np.ndarray) -> FeatureReference:
    """Bin edges and shares of the training rows' features and of the bundle's outputs."""
    scores = bundle.score(rows)
    columns = np.column_stack([rows, scores.anomaly_score, scores.failure_probability])
    return FeatureReference.from_rows(
        (*bundle.feature_names, ANOMALY_SCORE, FAILURE_PROBABILITY), columns)


def _evaluate(bundle: ModelBundle, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    scores = bundle.score(x_val)
    predicted = scores.failure_probability >= 0.5
    metrics = {
        "f1": f1_score(y_val, predicted, zero_division=0),
        "precision": precision_score(y_val, predicted, zero_division=0),
        "recall": recall_score(y_val, predicted, zero_division=0),
        "anomaly_rate": float(scores.is_anomaly.mean()),
        "anomaly_recall": recall_score(y_val, scores.is_anomaly, zero_division=0),
    }
    if len(set(y_val.tolist())) == 2:
        metrics["roc_auc"] = roc_auc_score(y_val, scores.failure_probability)
    return {k: float(v) for k, v in metrics.items()}


def train_baseline(settings: Settings, profile: Profile) -> TrainingResult:
    """The baseline as configured: synthetic readings, then :func:`train_models`."""
    readings = synthetic_readings(
        profile, settings.train_assets, settings.train_hours, settings.seed
    )
    return train_models(profile, readings, trees=settings.train_trees, seed=settings.seed)
