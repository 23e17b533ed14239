"""Asset-type profiles: which sensors an asset has and which features describe it.

Profiles are configuration (TOML), not code. Feature names derive from the profile::

    >>> p = load_profile("cnc")
    >>> p.feature_names[:3]
    ('temperature', 'temperature_mean_5m', 'temperature_std_5m')
    >>> len(p.feature_names) >= 40
    True
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

from assetwatch.errors import ConfigError

WINDOW_STATS = ("mean", "std", "min", "max")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""What a profile name may be: a name, never a path (no separators, dots or '..')."""


@dataclass(frozen=True)
class Sensor:
    """One named sensor: its valid range and how the simulator draws it."""

    name: str
    unit: str
    min: float
    max: float
    baseline: float
    noise: float
    failure_drift: float
    csv_column: str | None = None


@dataclass(frozen=True)
class WindowSpec:
    """An event-time window of ``length_s`` seconds built from ``bucket_s`` second buckets."""

    name: str
    length_s: int
    bucket_s: int
    stats: tuple[str, ...]

    @property
    def n_buckets(self) -> int:
        """Buckets the window is kept in: its length over the bucket width."""
        return self.length_s // self.bucket_s

    @property
    def extrema(self) -> bool:
        """True when the window reports a min or max, so buckets keep extrema."""
        return "min" in self.stats or "max" in self.stats


@dataclass(frozen=True)
class Interaction:
    """A feature combining two sensors' current readings."""

    name: str
    op: Literal["product", "ratio"]
    left: str
    right: str


@dataclass(frozen=True)
class BaselineSpec:
    """How each asset of the type learns its own normal (:mod:`assetwatch.features.baseline`)."""

    calibration_readings: int = 400
    """An asset's first readings, which calibrate its baseline and are not judged."""
    window: str = ""
    """The window whose per-sensor mean is watched; empty: the profile's first window."""
    sensors: tuple[str, ...] = ()
    """The sensors watched; empty: all. Leave out slow states (temperatures) that drift
    through every run whatever the machine's health."""
    threshold: float = 4.5
    """A reading is anomalous when a watched mean is this many of the asset's own standard
    deviations from its calibrated level."""


@dataclass(frozen=True)
class Profile:
    """Everything features, validation and the simulator need to know of one asset type."""

    name: str
    description: str
    reading_interval_s: float
    sensors: tuple[Sensor, ...]
    windows: tuple[WindowSpec, ...]
    interactions: tuple[Interaction, ...]
    raw: bool = True
    rate_of_change: bool = True
    pct_change: bool = True
    zscore_window: str | None = None
    baseline: BaselineSpec = BaselineSpec()

    @cached_property
    def baseline_window(self) -> int:
        """Index of the window the baseline watches."""
        name = self.baseline.window or self.windows[0].name
        return next(j for j, w in enumerate(self.windows) if w.name == name)

    @cached_property
    def baseline_sensors(self) -> tuple[int, ...]:
        """Indices (in sensor order) of the sensors the baseline watches."""
        watched = self.baseline.sensors or self.sensor_names
        return tuple(self.sensor_names.index(name) for name in watched)

    @cached_property
    def sensor_names(self) -> tuple[str, ...]:
        """Sensor names in profile order, the order of every value vector."""
        return tuple(s.name for s in self.sensors)

    @cached_property
    def sensor_set(self) -> frozenset[str]:
        """Sensor names as a set: a reading's keys must equal it."""
        return frozenset(self.sensor_names)

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """Model-input column names, derived from the parameters (``temperature_mean_5m``)."""
        names: list[str] = []
        for sensor in self.sensor_names:
            if self.raw:
                names.append(sensor)
            for window in self.windows:
                names.extend(f"{sensor}_{stat}_{window.name}" for stat in window.stats)
            if self.zscore_window:
                names.append(f"{sensor}_zscore_{self.zscore_window}")
            if self.rate_of_change:
                names.append(f"{sensor}_rate_of_change")
            if self.pct_change:
                names.append(f"{sensor}_pct_change")
        names.extend(i.name for i in self.interactions)
        return tuple(names)

    @property
    def max_window_s(self) -> int:
        """Length of the longest window, in seconds."""
        return max(w.length_s for w in self.windows)

    @cached_property
    def windows_complete_s(self) -> int:
        """Event-time seconds after an asset's first reading once every window is complete.

        A window spans at least its length less one bucket (:mod:`assetwatch.features.windows`).
        """
        return max(w.length_s - w.bucket_s for w in self.windows)


def _build(raw: Mapping[str, Any], source: str) -> Profile:
    try:
        sensors = tuple(Sensor(**s) for s in raw["sensors"])
        windows = tuple(
            WindowSpec(w["name"], int(w["length_s"]), int(w["bucket_s"]), tuple(w["stats"]))
            for w in raw["windows"]
        )
        interactions = tuple(Interaction(**i) for i in raw.get("interactions", ()))
        options = raw.get("features", {})
        judged = raw.get("baseline", {})
        baseline = BaselineSpec(**{**judged, "sensors": tuple(judged.get("sensors", ()))})
        profile = Profile(
            name=raw["name"],
            description=raw.get("description", ""),
            reading_interval_s=float(raw.get("reading_interval_s", 1.0)),
            sensors=sensors,
            windows=windows,
            interactions=interactions,
            baseline=baseline,
            **options,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"profile {source} is malformed: {exc!r}") from exc
    _check(profile, source)
    return profile


def _check(profile: Profile, source: str) -> None:
    names = profile.sensor_names
    problems = []
    if not names or len(set(names)) != len(names):
        problems.append("sensor names must be present and unique")
    for w in profile.windows:
        if w.bucket_s <= 0 or w.length_s % w.bucket_s:
            problems.append(f"window {w.name}: length_s must be a multiple of bucket_s")
        if set(w.stats) - set(WINDOW_STATS):
            problems.append(f"window {w.name}: stats must be among {WINDOW_STATS}")
    if profile.zscore_window:
        zw = {w.name: w for w in profile.windows}.get(profile.zscore_window)
        if zw is None or not {"mean", "std"} <= set(zw.stats):
            problems.append("zscore_window must name a window with mean and std")
    for i in profile.interactions:
        if i.op not in ("product", "ratio") or {i.left, i.right} - set(names):
            problems.append(f"interaction {i.name}: unknown op or sensor")
    problems.extend(_baseline_problems(profile))
    if problems:
        raise ConfigError(f"profile {source}: " + "; ".join(problems))


def _baseline_problems(profile: Profile) -> list[str]:
    spec, problems = profile.baseline, []
    windows = {w.name: w for w in profile.windows}
    if spec.window and "mean" not in getattr(windows.get(spec.window), "stats", ()):
        problems.append(f"baseline window {spec.window!r} must name a window with a mean")
    if not spec.window and profile.windows and "mean" not in profile.windows[0].stats:
        problems.append("baseline: the first window needs a mean, or name one that has")
    if set(spec.sensors) - set(profile.sensor_names):
        problems.append(f"baseline sensors {sorted(set(spec.sensors) - set(profile.sensor_names))}"
                        " are not sensors of the profile")
    if spec.calibration_readings < 2 or not spec.threshold > 0:
        problems.append("baseline: calibration_readings must be >= 2 and threshold > 0")
    return problems


def load_profile(name: str, extra_dir: Path | None = None) -> Profile:
    """The profile called ``name``: from ``extra_dir`` if it has one, else the bundled one.

    >>> load_profile("../../etc/x")
    Traceback (most recent call last):
    ...
    assetwatch.errors.ConfigError: profile name '../../etc/x' is not a name (letters, digits, _, -)
    """
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ConfigError(f"profile name {name!r} is not a name (letters, digits, _, -)")
    if extra_dir is not None and (extra_dir / f"{name}.toml").is_file():
        path = extra_dir / f"{name}.toml"
        return _parse(name, path, str(path))
    bundled = resources.files("assetwatch.features") / "profiles" / f"{name}.toml"
    if not bundled.is_file():
        raise ConfigError(f"no profile named {name!r}")
    return _parse(name, bundled, f"{name}.toml")


def _parse(name: str, file: Path | Traversable, source: str) -> Profile:
    """The profile in ``file``, which must call itself ``name`` (profiles are keyed by name)."""
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"profile {source} is not readable TOML: {exc}") from exc
    profile = _build(raw, source)
    if profile.name != name:
        raise ConfigError(f"profile {source} calls itself {profile.name!r}, not {name!r}")
    return profile


def load_profiles(names: Iterable[str], extra_dir: Path | None = None) -> dict[str, Profile]:
    """Profiles by name, in the order given."""
    return {name: load_profile(name, extra_dir) for name in names}
