"""The offline path: features and baseline scores of a DataFrame of readings.

Through the same extractor a worker folds readings with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assetwatch.features.batch import fold_in_order
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile


def compute_features(readings: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Feature rows for ``readings`` (columns asset_id, timestamp in ms, one per sensor).

    Each asset's readings are folded in timestamp order (stable, so ties keep their row
    order), exactly as a worker folds them; the result is aligned with ``readings.index``.
    """
    extractor, index, snapshots = _folded(readings, profile)
    features = pd.DataFrame(extractor.rows(snapshots) if len(snapshots) else None, index=index,
                            columns=list(extractor.names))
    return features.loc[readings.index]


def compute_baseline(readings: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Columns ``calibrating``, ``baseline_score``, ``windows_complete``, as a worker gives them."""
    extractor, index, snapshots = _folded(readings, profile)
    scores = extractor.baseline(snapshots)
    frame = pd.DataFrame({"calibrating": scores.calibrating, "baseline_score": scores.score,
                          "windows_complete": scores.windows_complete}, index=index)
    return frame.loc[readings.index]


def windows_complete(readings: pd.DataFrame, profile: Profile) -> np.ndarray:
    """Per reading: every window spans its full length (as :func:`compute_baseline` says).

    Without folding: an asset's windows are complete ``profile.windows_complete_s`` after its
    first reading.
    """
    ts = readings["timestamp"].to_numpy(dtype=np.int64)
    first = readings.groupby("asset_id", sort=False)["timestamp"].transform("min")
    complete: np.ndarray = ts - first.to_numpy(dtype=np.int64) >= profile.windows_complete_s * 1000
    return complete


def _folded(readings: pd.DataFrame, profile: Profile
            ) -> tuple[FeatureExtractor, pd.Index, np.ndarray]:
    """Every reading folded into its asset's state, in the order a worker folds them."""
    missing = {"asset_id", "timestamp", *profile.sensor_names} - set(readings.columns)
    if missing:
        raise KeyError(f"readings lack columns {sorted(missing)}")
    extractor = FeatureExtractor(profile)
    ordered = readings.sort_values(["asset_id", "timestamp"], kind="stable")
    values = ordered[list(profile.sensor_names)].to_numpy(dtype=float).tolist()
    timestamps = ordered["timestamp"].to_numpy(dtype=np.int64).tolist()
    snapshots = fold_in_order(extractor, ordered["asset_id"].tolist(), timestamps, values)
    return extractor, ordered.index, snapshots
