"""Per-asset baselines: every asset learns its own normal from its first readings.

Each machine runs at its own operating point (flow, pressure, current), and a fault is a
shift of a few of the asset's *own* standard deviations, often smaller than the gap between
two healthy machines. So one pooled "normal" cannot tell them apart; the asset's own past can.

An asset calibrates on its first ``calibration_readings`` readings: for each watched sensor,
the mean over a short trailing window (the profile's baseline window), taken at every
calibration reading whose window is complete, gives the level and standard deviation that
sensor's window mean has on this asset when it is normal. From then on, a reading's baseline
score is the largest ``|window mean - level| / deviation`` over the watched sensors, and the
reading is anomalous above the profile's threshold. The totals are part of the asset's
changelogged state, so a restart or a rebalance resumes the same baseline exactly.

    >>> from assetwatch.features.profiles import load_profile
    >>> profile = load_profile("pump")
    >>> baseline = Baseline.empty(profile)
    >>> baseline.calibrating(profile)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assetwatch.features.profiles import Profile
from assetwatch.features.running import Segments, running
from assetwatch.features.windows import BucketedWindow

NO_TIME = -1
RELATIVE_FLOOR = 1e-3
"""A deviation is at least this fraction of the level: a sensor that never moved while
calibrating (a quantised or idle one) does not turn every later rounding step into an alarm."""


@dataclass(slots=True)
class Baseline:
    """Calibration totals of one asset: readings seen, and sums of the watched window means."""

    seen: int = 0
    """Readings folded since calibration began."""
    first_ts_ms: int = NO_TIME
    """Event time of the first of them: a window is complete once it spans its length."""
    n: int = 0
    """Complete-window calibration readings summed below."""
    sums: list[float] = field(default_factory=list)
    sumsqs: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, profile: Profile) -> Baseline:
        """A baseline that has seen nothing yet (calibrating)."""
        b = len(profile.baseline_sensors)
        return cls(sums=[0.0] * b, sumsqs=[0.0] * b)

    def calibrating(self, profile: Profile) -> bool:
        """True until the calibration readings are in (and at least two complete windows)."""
        return self.seen < profile.baseline.calibration_readings or self.n < 2

    def observe(self, profile: Profile, ts_ms: int, window: BucketedWindow) -> bool:
        """Count one reading, its baseline ``window`` folded; True if it is a calibration one.

        A reading is judged only once calibration has ended *and* its window is complete, so
        no partly filled window passes for a signal. The window means are summed while
        calibrating; after that they are derived from the snapshot, vectorised.
        """
        if self.first_ts_ms == NO_TIME or ts_ms < self.first_ts_ms:
            self.first_ts_ms = ts_ms
        spec = profile.windows[profile.baseline_window]
        complete = ts_ms - self.first_ts_ms >= (spec.length_s - spec.bucket_s) * 1000
        if not self.calibrating(profile):
            return not complete
        self.seen += 1
        if complete:
            self.n += 1
            for i, m in enumerate(window.means(profile.baseline_sensors)):
                self.sums[i] += m
                self.sumsqs[i] += m * m
        return True

    def to_floats(self) -> list[float]:
        """Flat floats for the state bytes; :meth:`load_floats` reads them back."""
        return [float(self.seen), float(self.first_ts_ms), float(self.n), *self.sums,
                *self.sumsqs]

    def load_floats(self, data: Sequence[float], pos: int) -> int:
        """Restore what :meth:`to_floats` wrote at ``data[pos:]``; return the next position."""
        b = len(self.sums)
        if pos + 3 + 2 * b > len(data):
            raise ValueError(f"baseline of {b} sensors overruns the data")
        self.seen, self.first_ts_ms, self.n = (int(x) for x in data[pos : pos + 3])
        self.sums = list(data[pos + 3 : pos + 3 + b])
        self.sumsqs = list(data[pos + 3 + b : pos + 3 + 2 * b])
        return pos + 3 + 2 * b

    def windows_complete(self, profile: Profile, ts_ms: int) -> bool:
        """True once every window of a reading at ``ts_ms`` spans its full length.

        Counted from the first reading since calibration began, so after a baseline reset
        (which keeps the windows) this is later than it need be, never earlier.
        """
        return (self.first_ts_ms != NO_TIME
                and ts_ms - self.first_ts_ms >= profile.windows_complete_s * 1000)

    def snapshot_into(self, out: list[float], calibrating: bool, windows_complete: bool
                      ) -> None:
        """Append what :func:`baseline_scores` needs of one reading, beside its window means."""
        out.append(1.0 if calibrating else 0.0)
        out.append(1.0 if windows_complete else 0.0)
        out.append(float(self.n))
        out.extend(self.sums)
        out.extend(self.sumsqs)


def observe_sorted(baselines: Sequence[Baseline], profile: Profile, assets: Segments,
                   ts_ms: np.ndarray, means: np.ndarray) -> np.ndarray:
    """:meth:`Baseline.observe` then :meth:`Baseline.snapshot_into` for many assets at once.

    Row ``i`` is a reading of ``baselines[assets.of_row[i]]``, each asset's rows adjacent and
    in fold order; ``means`` holds each reading's baseline window means (watched sensors)
    after its fold. Returns one :func:`snapshot_width` row per reading and leaves every
    baseline as :meth:`Baseline.observe` would, bit for bit: calibration is a prefix of an
    asset's readings, and its sums are accumulated in order (:func:`running`; a reading
    not summed adds an exact 0.0).
    """
    b, group = len(profile.baseline_sensors), assets.of_row
    spec = profile.windows[profile.baseline_window]
    earliest = np.array([[np.inf if x.first_ts_ms == NO_TIME else float(x.first_ts_ms)]
                         for x in baselines])
    first = running(earliest, ts_ms[:, None].astype(float), assets, np.minimum.accumulate,
                    np.inf)[:, 0]
    since = ts_ms - first
    complete = since >= (spec.length_s - spec.bucket_s) * 1000
    seen = np.array([x.seen for x in baselines])[group] + assets.position
    complete_before = _within(np.cumsum(complete), assets) - complete
    n = np.array([x.n for x in baselines])
    still = ((seen < profile.baseline.calibration_readings)
             | (n[group] + complete_before < 2)).astype(float)
    calibrating = running(np.ones((len(baselines), 1)), still[:, None], assets,
                          np.minimum.accumulate, np.inf)[:, 0] > 0.0
    summed = calibrating & complete
    out = np.empty((len(ts_ms), 3 + 2 * b))
    out[:, 0] = calibrating | ~complete
    out[:, 1] = since >= profile.windows_complete_s * 1000
    out[:, 2] = n[group] + _within(np.cumsum(summed), assets)
    terms = np.where(summed[:, None], means, 0.0)
    shape = (len(baselines), b)
    out[:, 3 : 3 + b] = running(np.array([x.sums for x in baselines]).reshape(shape), terms,
                                assets)
    out[:, 3 + b :] = running(np.array([x.sumsqs for x in baselines]).reshape(shape),
                              terms * terms, assets)
    lasts = assets.lasts
    cal_counts = np.add.reduceat(calibrating.astype(np.int64), assets.firsts)
    for x, row, first_ts, calibrated in zip(baselines, out[lasts].tolist(),
                                            first[lasts].tolist(), cal_counts.tolist(),
                                            strict=True):
        x.first_ts_ms, x.seen, x.n = int(first_ts), x.seen + int(calibrated), int(row[2])
        x.sums, x.sumsqs = row[3 : 3 + b], row[3 + b :]
    return out


def _within(cumulative: np.ndarray, assets: Segments) -> np.ndarray:
    """An inclusive cumulative sum over all rows restarted at each asset's first row."""
    before = np.concatenate(([0], cumulative[assets.lasts[:-1]]))
    restarted: np.ndarray = cumulative - before[assets.of_row]
    return restarted


def snapshot_width(profile: Profile) -> int:
    """Floats :meth:`Baseline.snapshot_into` appends."""
    return 3 + 2 * len(profile.baseline_sensors)


@dataclass(frozen=True)
class BaselineScores:
    """Per reading of a batch: still calibrating, its score, and each watched sensor's z."""

    calibrating: np.ndarray
    score: np.ndarray
    z: np.ndarray
    windows_complete: np.ndarray
    """Every window of the reading spans its full length (drift watches only these rows)."""


def baseline_scores(totals: np.ndarray, means: np.ndarray, profile: Profile) -> BaselineScores:
    """Scores of readings from the baseline part of their snapshots and their window means.

    ``totals`` is (n, snapshot_width), ``means`` (n, watched sensors). Vectorised over the
    batch; calibration rows score 0.
    """
    b = len(profile.baseline_sensors)
    calibrating, complete = totals[:, 0] > 0.0, totals[:, 1] > 0.0
    n = np.maximum(totals[:, 2:3], 2.0)
    sums, sumsqs = totals[:, 3 : 3 + b], totals[:, 3 + b :]
    level = sums / n
    variance = np.maximum((sumsqs - sums * level) / (n - 1.0), 0.0)
    deviation = np.maximum(np.sqrt(variance), _floor(profile, level))
    z = np.where(calibrating[:, None], 0.0, (means - level) / deviation)
    score = np.abs(z).max(axis=1) if b else np.zeros(len(totals))
    return BaselineScores(calibrating=calibrating, score=score, z=z, windows_complete=complete)


def _floor(profile: Profile, level: np.ndarray) -> np.ndarray:
    """The smallest deviation believed.

    Relative to the level, and never below a millionth of the sensor's legal range (a level of
    exactly zero).
    """
    span = np.array([profile.sensors[i].max - profile.sensors[i].min
                     for i in profile.baseline_sensors])
    floor: np.ndarray = np.maximum(RELATIVE_FLOOR * np.abs(level), 1e-6 * span)
    return floor
