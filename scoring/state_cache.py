"""The decoded asset states a processor keeps between batches, with the bytes they match."""

from __future__ import annotations

import logging
from collections import OrderedDict

from assetwatch.errors import SerializationError
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState
from assetwatch.text import loggable

log = logging.getLogger(__name__)

DECODED_STATES_KEPT = 4096
"""Assets whose decoded state a processor keeps between batches (~30 KB each)."""


class DecodedStates:
    """Recently used states, decoded, with the bytes they were stored as (LRU)."""

    def __init__(self) -> None:
        self._decoded: OrderedDict[bytes, tuple[bytes, AssetState]] = OrderedDict()

    def load(self, asset: bytes, profile: Profile, raw: bytes | None) -> AssetState:
        """The asset's state: the decoded copy kept from the last batch if its bytes match.

        An entry leaves the cache while its batch runs and comes back only with the bytes
        the batch ended with, so a batch that fails half way cannot leave a folded copy behind.
        """
        if raw is None:
            return AssetState.empty(profile)
        kept = self._decoded.pop(asset, None)
        if kept is not None and kept[0] == raw:
            return kept[1]
        try:
            return AssetState.from_bytes(raw, profile)
        except SerializationError:
            log.exception("feature state of %s is unreadable: starting it afresh", loggable(asset))
            return AssetState.empty(profile)

    def keep(self, asset: bytes, raw: bytes, state: AssetState) -> None:
        """Keep ``state``, decoded from (or encoded as) ``raw``, for the next batch."""
        self._decoded[asset] = (raw, state)
        self._decoded.move_to_end(asset)
        while len(self._decoded) > DECODED_STATES_KEPT:
            self._decoded.popitem(last=False)
