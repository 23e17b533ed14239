"""The decoded asset states a processor keeps between batches, with the bytes they match.

With more than one batch in flight (``batches_in_flight``), the worker sends a batch the
states its table holds, which lag behind the batches still being processed: the processor
then folds on from the state it kept itself, the newer one. A kept state is always the fold
of readings whose outputs were all delivered: the processor drops every kept state when a
batch fails (:meth:`DecodedStates.clear`), so its readings are folded again when read again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from assetwatch.errors import ForeignStateError, SerializationError
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState, further_along, stored_profile
from assetwatch.text import loggable

log = logging.getLogger(__name__)

DECODED_STATES_KEPT = 4096
"""Assets whose decoded state a processor keeps between batches (~30 KB each), at least."""


class DecodedStates:
    """Recently used states, decoded, with the bytes they were stored as (LRU).

    ``capacity`` must hold every asset of the batches in flight at once, so that no state
    a later batch folds on is evicted before it is written.
    """

    def __init__(self, capacity: int = DECODED_STATES_KEPT, served: Iterable[str] = ()) -> None:
        self._capacity = max(capacity, DECODED_STATES_KEPT)
        self._served = tuple(served)
        """The profiles served: a stored state naming none of them is damaged, not foreign."""
        self._decoded: OrderedDict[bytes, tuple[bytes, AssetState]] = OrderedDict()

    def load(self, asset: bytes, profile: Profile, raw: bytes | None) -> AssetState:
        """The asset's state: the kept copy if its bytes match ``raw`` or it is further along.

        ``raw`` is what the worker's table holds. The kept copy is newer when a batch that
        changed it is still in flight, or was published but given up at a rebalance (its
        readings then count as replays). A table state further along the asset's partition
        (written by the partition's owner meanwhile) wins. An entry leaves the cache while its
        batch runs and comes back only with the bytes the batch ended with. Stored bytes of
        another served profile raise :class:`ForeignStateError`; unreadable ones (a profile
        digest naming no served profile among them) start afresh.
        """
        kept = self._decoded.pop(asset, None)
        if kept is not None and (kept[0] == raw or further_along(kept[0], raw)):
            return kept[1]
        if raw is None:
            return AssetState.empty(profile)
        try:
            return AssetState.from_bytes(raw, profile)
        except ForeignStateError:  # the reading's fault, not the state's: the state stays
            if stored_profile(raw, self._served) is not None:
                raise
            log.error("feature state of %s names no profile served here: starting it afresh",
                      loggable(asset))
            return AssetState.empty(profile)
        except SerializationError:
            log.exception("feature state of %s is unreadable: starting it afresh", loggable(asset))
            return AssetState.empty(profile)

    def keep(self, asset: bytes, raw: bytes, state: AssetState) -> None:
        """Keep ``state``, decoded from (or encoded as) ``raw``, for the next batch."""
        self._decoded[asset] = (raw, state)
        self._decoded.move_to_end(asset)
        while len(self._decoded) > self._capacity:
            self._decoded.popitem(last=False)

    def clear(self) -> None:
        """Drop every kept state: a batch failed, and its outputs may not have been delivered."""
        self._decoded.clear()
