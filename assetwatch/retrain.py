"""``assetwatch train``: train, register as challenger, maybe promote; once or every N hours."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import load_profile
from assetwatch.features.readings import LABEL, read_labelled_readings, read_normal_readings
from assetwatch.models.registry import CHALLENGER, RegistryConfig, register
from assetwatch.models.training import train_baseline
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

MAX_NAMED_FILES = 20
Promoter = Callable[[str, str], Any]
"""Serve (profile, version); returns what to report about the move."""


@dataclass(frozen=True)
class TrainRequest:
    """What to train on: synthetic readings, or the labelled ``inputs`` of one profile."""

    profiles: tuple[str, ...]
    inputs: tuple[Path, ...] = ()
    label_column: str = LABEL
    normal_inputs: tuple[Path, ...] = ()
    """Files of normal operation: every row counts as normal, no label column needed."""
    every_h: float | None = None
    """Retrain every this many hours until interrupted; None: once."""

    def __post_init__(self) -> None:
        if (self.inputs or self.normal_inputs) and len(self.profiles) != 1:
            raise ConfigError("--input holds one profile's readings: name it with one --profile")


def train_round(settings: Settings, request: TrainRequest, promote: Promoter | None = None
                ) -> dict[str, Any]:
    """Train and register each profile as challenger (then promote it if asked)."""
    results: dict[str, Any] = {}
    for name in request.profiles:
        profile = load_profile(name, settings.profiles_dir)
        readings, source = None, None
        if request.inputs or request.normal_inputs:  # read again every round (a schedule
            # picks up a refreshed export)
            readings = pd.concat(
                [*(read_labelled_readings(p, profile, request.label_column)
                   for p in request.inputs),
                 *(read_normal_readings(p, profile) for p in request.normal_inputs)],
                ignore_index=True)
            source = _describe((*request.inputs, *request.normal_inputs))
        log.info("training %s on %s (%d search trials)", name, source or "synthetic readings",
                 settings.train_trials)
        result = train_baseline(settings, profile, readings, source)
        version = register(RegistryConfig.from_settings(settings), result, alias=CHALLENGER)
        results[name] = {"model": settings.model_name(name), "version": version,
                         "alias": CHALLENGER,
                         **{k: round(v, 4) for k, v in result.metrics.items()}}
        if promote is not None:
            results[name]["promoted"] = promote(name, version)
    return results


def _describe(paths: tuple[Path, ...]) -> str:
    """The files, or their count and the first and last (an MLflow param holds 6,000 chars)."""
    if len(paths) <= MAX_NAMED_FILES:
        return ", ".join(str(p) for p in paths)
    return f"{len(paths)} files: {paths[0]} ... {paths[-1]}"


def run_training(settings: Settings, request: TrainRequest, promote: Promoter | None,
                 emit: Callable[[dict[str, Any]], None],
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """One round, or rounds every ``request.every_h`` until Ctrl-C or SIGTERM (then 0)."""
    if request.every_h is None:
        emit(train_round(settings, request, promote))
        return 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
    while True:
        emit(train_round(settings, request, promote))
        log.info("next training in %g h; Ctrl-C or SIGTERM stops the schedule", request.every_h)
        try:
            sleep(request.every_h * 3600)
        except KeyboardInterrupt:
            log.info("retraining schedule stopped")
            return 0
