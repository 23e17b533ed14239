"""Load the model a worker serves: data-only artifacts, checked, with a fallback chain.

Start-up walks the chain: the version ``@champion`` names, then the earlier champions of the
alias history (newest first), then the local artifact of the last registration, then (if
allowed) bootstrap training. Every candidate is loaded from data-only files and checked
(:func:`assetwatch.models.checks.check_servable`); any load or check failure moves on to the
next one and is returned as a :class:`Rejection`, so the caller can log and alert on it.
``assetwatch promote`` runs the same load and checks before it moves the alias.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assetwatch.errors import ModelRejectedError, ModelUnavailableError, RegistryUnavailableError
from assetwatch.features.profiles import Profile
from assetwatch.models.artifacts import load_local, read_bundle
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.checks import check_servable, reference_features
from assetwatch.models.registry import (
    CHALLENGER,
    AliasMove,
    RegistryConfig,
    champion_history,
    download_serving,
    promote,
    register,
    served_version,
)
from assetwatch.redaction import mask_credentials

if TYPE_CHECKING:  # the train extra's: bootstrap callers import it lazily
    from assetwatch.models.training import TrainingResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """A candidate of the fallback chain that was not served, and why (names the step)."""

    name: str
    version: str
    reason: str


@dataclass(frozen=True)
class Served:
    """What start-up serves, and the candidates it passed over on the way."""

    model: ScoringModel
    rejected: tuple[Rejection, ...] = ()


def load_version(config: RegistryConfig, profile: str, version: str) -> ScoringModel:
    """One registered version, from its data-only files: nothing is unpickled."""
    with tempfile.TemporaryDirectory(prefix="assetwatch-model-") as tmp:
        folder = download_serving(config, profile, version, Path(tmp))
        bundle = read_bundle(folder)
    return ScoringModel(name=config.model_name(profile), version=str(version), bundle=bundle)


def load_checked(config: RegistryConfig, profile: Profile, version: str,
                 reference: np.ndarray) -> ScoringModel:
    """:func:`load_version` then :func:`check_servable`.

    Any failure is a :class:`ModelRejectedError` naming its step.
    """
    try:
        model = load_version(config, profile.name, version)
    except ModelRejectedError:
        raise
    except Exception as exc:  # whatever broke while loading, the reason says it was the load
        raise ModelRejectedError("load", mask_credentials(repr(exc))) from exc
    check_servable(model, profile, reference)
    return model


def promote_checked(config: RegistryConfig, profile: Profile, version: str | None = None
                    ) -> AliasMove:
    """Load and check ``version`` (default: the ``@challenger``), then move the alias to it.

    A rejected version leaves the alias where it was.
    """
    if version is None:
        version = served_version(config, profile.name, CHALLENGER)
        if version is None:
            raise ModelUnavailableError(
                f"{config.model_name(profile.name)} has no @{CHALLENGER} to promote")
    try:
        load_checked(config, profile, version, reference_features(profile))
    except ModelRejectedError as exc:
        raise ModelRejectedError(exc.step, f"not promoted (@{config.alias} unchanged): "
                                 f"{exc.detail}") from exc
    return promote(config, profile.name, version)


def load_serving_model(config: RegistryConfig, profile: Profile,
                       bootstrap: Callable[[], TrainingResult] | None) -> Served:
    """Walk the fallback chain; the first candidate that loads and passes the checks."""
    name = config.model_name(profile.name)
    log.info("looking up %s@%s in the registry %s", name, config.alias, config.display_uri)
    reference = reference_features(profile)
    rejected: list[Rejection] = []
    for version in _registry_candidates(config, profile.name):
        try:
            model = load_checked(config, profile, version, reference)
        except ModelRejectedError as exc:
            log.error("not serving %s version %s: %s", name, version, exc)
            rejected.append(Rejection(name, version, str(exc)))
            continue
        _log_choice(model, rejected, "the registry")
        return Served(model, tuple(rejected))
    local = _checked_local(config, profile, reference, rejected)
    if local is not None:
        _log_choice(local, rejected, "the local artifact")
        return Served(local, tuple(rejected))
    if bootstrap is None:
        raise ModelUnavailableError(
            f"no servable model for profile {profile.name!r}: registry ({len(rejected)} "
            "rejected), local artifact, bootstrap disabled"
            + "".join(f"; version {r.version}: {r.reason}" for r in rejected))
    return Served(_bootstrapped(config, profile, bootstrap, reference), tuple(rejected))


def _registry_candidates(config: RegistryConfig, profile: str) -> list[str]:
    """The aliased version, then earlier champions, newest first, each once."""
    try:
        history = champion_history(config, profile)
    except RegistryUnavailableError as exc:
        log.warning("%s: trying the local artifact", exc)
        return []
    return list(dict.fromkeys(reversed(history)))


def _checked_local(config: RegistryConfig, profile: Profile, reference: np.ndarray,
                   rejected: list[Rejection]) -> ScoringModel | None:
    try:
        model = load_local(config.local_dir, profile.name)
        if model is not None:
            check_servable(model, profile, reference)
        return model
    except ModelRejectedError as exc:
        log.error("not serving the local artifact of %s: %s", profile.name, exc)
        rejected.append(Rejection(config.model_name(profile.name), "local", str(exc)))
        return None


def _bootstrapped(config: RegistryConfig, profile: Profile,
                  bootstrap: Callable[[], TrainingResult], reference: np.ndarray
                  ) -> ScoringModel:
    log.warning("no servable model for profile %s: training and registering the baseline",
                profile.name)
    version = register(config, bootstrap(), plots=False)
    return load_checked(config, profile, version, reference)


def _log_choice(model: ScoringModel, rejected: list[Rejection], source: str) -> None:
    if rejected:
        log.warning("serving %s version %s from %s instead of %s (rejected)", model.name,
                    model.version, source, ", ".join(r.version for r in rejected))
    else:
        log.info("serving %s version %s from %s", model.name, model.version, source)
