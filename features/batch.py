"""Features of readings held in arrays, folded as a worker folds them: numpy only.

The serving checks' reference batch comes through here, so a worker needs no pandas;
:mod:`assetwatch.features.offline` is the same fold for DataFrames (training, evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile


def fold_in_order(extractor: FeatureExtractor, asset_ids: Sequence[str],
                  timestamps: Sequence[int], values: Sequence[Sequence[float]]) -> np.ndarray:
    """Fold each reading into its asset's state in the order given; one snapshot row each.

    Each asset's readings are folded together (:meth:`FeatureExtractor.fold_many`), as a
    worker folds a batch's: assets do not depend on one another.
    """
    by_asset: dict[str, list[int]] = {}
    for i, asset in enumerate(asset_ids):
        by_asset.setdefault(asset, []).append(i)
    groups = list(by_asset.values())
    snapshots = np.empty((len(asset_ids), extractor.snapshot_width))
    if groups:
        snapshots[[i for rows in groups for i in rows]] = extractor.fold_many(
            [extractor.new_state() for _ in groups],
            [[timestamps[i] for i in rows] for rows in groups],
            [[values[i] for i in rows] for rows in groups])
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
    if len(snapshots):
        rows[order] = extractor.rows(snapshots)
    return rows
