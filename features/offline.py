"""The offline path: features for a DataFrame of readings, through the same extractor."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState


def compute_features(readings: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Feature rows for ``readings`` (columns asset_id, timestamp in ms, one per sensor).

    Each asset's readings are folded in timestamp order (stable, so ties keep their row
    order), exactly as a worker folds them; the result is aligned with ``readings.index``.
    """
    missing = {"asset_id", "timestamp", *profile.sensor_names} - set(readings.columns)
    if missing:
        raise KeyError(f"readings lack columns {sorted(missing)}")
    extractor = FeatureExtractor(profile)
    ordered = readings.sort_values(["asset_id", "timestamp"], kind="stable")
    values = ordered[list(profile.sensor_names)].to_numpy(dtype=float).tolist()
    timestamps = ordered["timestamp"].to_numpy(dtype=np.int64).tolist()
    assets = ordered["asset_id"].tolist()
    rows: list[list[float]] = []
    states: dict[str, AssetState] = {}
    for asset, ts, vals in zip(assets, timestamps, values, strict=True):
        state = states.get(asset)
        if state is None:
            state = states[asset] = extractor.new_state()
        rows.append(extractor.update(state, ts, vals))
    features = pd.DataFrame(rows, index=ordered.index, columns=list(extractor.names))
    return features.loc[readings.index]
