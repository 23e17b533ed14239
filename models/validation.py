"""Validation beyond the time split: held-out assets, and the per-asset baselines.

A time split validates on the same machines the models trained on, which flatters them: a
model meets new machines in production. So the classifier is also fitted on some assets
and judged on the others (a group split), and the baselines, which every asset fits for
itself, are judged on each labelled asset as a worker would judge it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from assetwatch.features.offline import compute_baseline
from assetwatch.features.profiles import Profile
from assetwatch.models.evaluation import Confusion
from assetwatch.models.search import fit_classifier

log = logging.getLogger(__name__)

HELD_OUT_FRACTION = 0.25
"""The last quarter of the assets (sorted by id) validates; at least one asset."""


def held_out_assets(features: np.ndarray, labels: np.ndarray, assets: np.ndarray,
                    params: dict[str, Any], seed: int) -> dict[str, float]:
    """Classifier metrics (``assets_*``) on assets it never saw, or {} when none can be had.

    It needs at least two assets, and failure and normal rows among the training assets.
    """
    ids = sorted(set(assets.tolist()))
    if len(ids) < 2:
        log.info("one asset only: no held-out-asset validation")
        return {}
    held = set(ids[-max(1, int(len(ids) * HELD_OUT_FRACTION)):])
    test = np.isin(assets, list(held))
    if len(set(labels[~test].tolist())) < 2 or not test.any():
        log.info("the training assets lack failure or normal rows: no held-out-asset "
                 "validation")
        return {"held_out_assets": float(len(held))}
    classifier = fit_classifier(params, features[~test], labels[~test], seed)
    classes = list(classifier.classes_)
    probability = classifier.predict_proba(features[test])[:, classes.index(1)]
    confusion = Confusion.of(labels[test], probability >= 0.5)
    metrics = {"held_out_assets": float(len(held)), "assets_f1": confusion.f1,
               "assets_precision": confusion.precision, "assets_recall": confusion.recall}
    if len(set(labels[test].tolist())) == 2:
        metrics["assets_roc_auc"] = float(roc_auc_score(labels[test], probability))
    log.info("held-out assets %s: classifier f1 %.3f", sorted(held), confusion.f1)
    return metrics


def baseline_metrics(readings: pd.DataFrame, profile: Profile) -> dict[str, float]:
    """SKAB's point-wise metric of the per-asset baselines over the labelled readings.

    Each asset calibrates on its first readings, as in a worker; calibrating rows are not
    judged. Empty when no row is judged or nothing is labelled a failure.
    """
    scores = compute_baseline(readings, profile)
    judged = ~scores["calibrating"].to_numpy()
    labels = readings["label"].to_numpy(dtype=int)
    if not judged.any() or not labels[judged].any():
        return {}
    alarms = scores["baseline_score"].to_numpy() > profile.baseline.threshold
    confusion = Confusion.of(labels[judged], alarms[judged])
    metrics = {"baseline_rows": float(judged.sum()), "baseline_f1": confusion.f1,
               "baseline_precision": confusion.precision, "baseline_recall": confusion.recall}
    if confusion.far is not None:
        metrics["baseline_far"] = confusion.far
    return metrics
