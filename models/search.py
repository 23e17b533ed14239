"""Hyper-parameter search on the time-ordered validation split (never shuffled).

The forest classifier's hyper-parameters are searched by Optuna (seeded TPE), each trial
scored by the failure classifier's validation F1. The detector's contamination only sets its
threshold (the training scores' quantile), so a single fitted detector tries every value of
:data:`CONTAMINATIONS`, scored by the F1 of its anomaly flags against the labels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import f1_score

log = logging.getLogger(__name__)

DEFAULT_CLASSIFIER = {"max_depth": 10, "min_samples_leaf": 1}
"""The classifier's hyper-parameters when no search runs (n_estimators: the trees setting)."""
DEFAULT_CONTAMINATION = 0.01
CONTAMINATIONS = (0.005, 0.01, 0.02, 0.05)
"""Detector thresholds tried: at most 5% of the healthy training rows flagged."""


@dataclass(frozen=True)
class Trial:
    """One finished trial: its classifier hyper-parameters and validation F1."""

    number: int
    params: dict[str, Any]
    f1: float
    seconds: float


@dataclass(frozen=True)
class Choice:
    """What training fits with: the fitted classifier, its and the detector's settings."""

    classifier: RandomForestClassifier
    classifier_params: dict[str, Any]
    contamination: float
    metrics: dict[str, float]
    """The search's validation F1s (none without a search)."""
    trials: tuple[Trial, ...]


@dataclass(frozen=True)
class Search:
    """The trials in order, the best of them and its fitted classifier."""

    trials: tuple[Trial, ...]
    best: Trial
    classifier: RandomForestClassifier


def choose(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
           healthy_train: np.ndarray, trials: int, trees: int, seed: int) -> Choice:
    """The defaults when ``trials`` is 0, else the best of a search (n_estimators ~ trees)."""
    if trials == 0:
        params = {"n_estimators": trees, **DEFAULT_CLASSIFIER}
        log.info("fitting RandomForest %s on %d rows", params, len(train[0]))
        return Choice(fit_classifier(params, *train, seed), params, DEFAULT_CONTAMINATION, {}, ())
    log.info("searching hyper-parameters: %d trials, %d training and %d validation rows",
             trials, len(train[0]), len(val[0]))
    search = search_classifier(train, val, trials, trees, seed)
    probe = IsolationForest(n_estimators=trees, random_state=seed, n_jobs=-1).fit(healthy_train)
    contamination, anomaly_f1 = choose_contamination(probe, healthy_train, val)
    return Choice(search.classifier, search.best.params, contamination,
                  {"search_best_f1": search.best.f1, "search_anomaly_f1": anomaly_f1},
                  search.trials)


def fit_classifier(params: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int
                   ) -> RandomForestClassifier:
    """A class-balanced random forest with ``params``, fitted on ``x`` and ``y``."""
    return RandomForestClassifier(
        **params, class_weight="balanced", random_state=seed, n_jobs=-1).fit(x, y)


def validation_f1(classifier: RandomForestClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """F1 of ``failure probability >= 0.5``, the rule the reported metrics use."""
    classes = list(classifier.classes_)
    if 1 not in classes:
        return 0.0
    predicted = classifier.predict_proba(x)[:, classes.index(1)] >= 0.5
    return float(f1_score(y, predicted, zero_division=0))


def _suggest(trial: optuna.Trial, trees: int) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", max(1, trees // 2), trees * 2),
        "max_depth": trial.suggest_int("max_depth", 3, 20),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 50, log=True),
    }


def search_classifier(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                      trials: int, trees: int, seed: int) -> Search:
    """Run ``trials`` Optuna trials (n_estimators around ``trees``), logging each one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    done: list[Trial] = []
    kept: dict[int, RandomForestClassifier] = {}  # only the best so far stays in memory

    def objective(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        params = _suggest(trial, trees)
        classifier = fit_classifier(params, *train, seed)
        f1 = validation_f1(classifier, *val)
        if not done or f1 > max(t.f1 for t in done):  # first of equals, as Optuna's
            kept.clear()
            kept[trial.number] = classifier
        done.append(Trial(trial.number, params, f1, time.perf_counter() - started))
        best = next(iter(kept))
        log.info("trial %d/%d: f1 %.4f %s in %.1f s (best: trial %d, f1 %.4f)",
                 trial.number + 1, trials, f1, params, done[-1].seconds, best + 1,
                 done[best].f1)
        return f1

    study.optimize(objective, n_trials=trials)
    best = done[study.best_trial.number]
    return Search(tuple(done), best, kept[best.number])


def choose_contamination(detector: IsolationForest, healthy_train: np.ndarray,
                         val: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """The contamination whose threshold flags the validation labels best, and its F1.

    Ties go to the smaller contamination (fewer false alarms).
    """
    train_scores = detector.score_samples(healthy_train)
    val_scores = detector.score_samples(val[0])
    results = []
    for contamination in CONTAMINATIONS:
        threshold = np.percentile(train_scores, 100.0 * contamination)
        flags = val_scores < threshold  # IsolationForest's own rule: decision < 0
        results.append((float(f1_score(val[1], flags, zero_division=0)), contamination))
    f1, contamination = max(results, key=lambda r: (r[0], -r[1]))
    log.info("detector contamination %.3f: anomaly-flag f1 %.4f (tried %s)",
             contamination, f1, CONTAMINATIONS)
    return contamination, f1
