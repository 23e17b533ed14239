"""Features of readings held in arrays, folded as a worker folds them: numpy only.

The serving checks' reference batch comes through here, so a worker needs no pandas;
:mod:`assetwatch.features.offline` is the same fold for DataFrames (training, evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState


def fold_in_order(extractor: FeatureExtractor, asset_ids: Sequence[str],
                  timestamps: Sequence[int], values: Sequence[Sequence[float]]
                  ) -> list[list[float]]:
    """Fold each reading into its asset's state in the order given; one snapshot per reading."""
    states: dict[str, AssetState] = {}
    snapshots = []
    for asset, ts, vals in zip(asset_ids, timestamps, values, strict=True):
        state = states.get(asset)
        if state is None:
            state = states[asset] = extractor.new_state()
        snapshots.append(extractor.fold(state, ts, vals))
    return snapshots


def feature_rows(profile: Profile, asset_ids: np.ndarray, timestamps: np.ndarray,
                 values: np.ndarray) -> np.ndarray:
    """Feature rows of readings (``values``: one column per profile sensor), row-aligned.

    Each asset's readings fold in timestamp order (stable: ties keep their row order), as
    :func:`assetwatch.features.offline.compute_features` folds a DataFrame.
    """
    extractor = FeatureExtractor(profile)
    order = np.lexsort((np.asarray(timestamps, dtype=np.int64), np.asarray(asset_ids, dtype=str)))
    snapshots = fold_in_order(extractor, np.asarray(asset_ids, dtype=str)[order].tolist(),
                              np.asarray(timestamps, dtype=np.int64)[order].tolist(),
                              np.asarray(values, dtype=float)[order].tolist())
    rows = np.empty((len(order), len(extractor.names)))
    if snapshots:
        rows[order] = extractor.rows(snapshots)
    return rows
