"""The ownership fence: a batch's outputs, states and acks only while this worker is a member.

A worker frozen past the group's session timeout (SIGSTOP, a VM pause, a long GC) is dropped
by the broker and its partitions go to another worker; when it resumes, its consumer still
believes it owns them until its next heartbeat is refused. Batches it finishes meanwhile
would publish predictions the new owner publishes too, write changelog states older than
the new owner's, and ack offsets it no longer owns.

So before a batch is published, and again before its states are written and its events
acked, the pipeline asks :meth:`OwnershipFence.confirm`:

- the member id or generation differs from when the batch began: the partitions were taken
  away (or re-given after a full rebalance, which re-reads them from the committed offset):
  the batch is dropped, unacked;
- the coordinator confirmed this member (a heartbeat or an assignment) within the lease, a
  fraction of the session timeout: the broker still counts it in the group; go ahead;
- neither: wait until one of the two holds. A worker resumed after a freeze waits here for
  its next heartbeat, which is refused, and so never writes.

It is a check, then a write: without broker transactions a worker frozen right after the
check can still write once (the changelog's recovery then keeps the newest state anyway:
``NewestStateTable``). tansu 0.6.0 has no transactions to close that window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

LEASE_FRACTION = 0.8
"""Of the session timeout: how long after the coordinator's last confirmation writes go on.

The broker drops a member a session timeout after the last heartbeat it received, which is
after the one confirmed was sent; a fifth is left for clock and scheduling slack."""
POLL_S = 0.05
"""How often an unsure fence looks at the membership again (heartbeats come every second)."""


@dataclass(frozen=True)
class Membership:
    """What the worker's consumer knows of its group membership."""

    generation: int
    member_id: str
    alive_at: float | None
    """Monotonic time of the coordinator's last confirmation of this member (None: none yet)."""


class Verdict(Enum):
    """The fence's answer for a batch."""

    OWNER = "owner"
    LOST = "lost"
    UNSURE = "unsure"


def verdict(begun: Membership | None, now: Membership | None, at: float,
            lease_s: float) -> Verdict:
    """Whether a batch that began under ``begun`` may be written at monotonic time ``at``.

    >>> m = Membership(3, "m-1", alive_at=100.0)
    >>> verdict(m, m, 101.0, 4.8).value, verdict(m, m, 110.0, 4.8).value
    ('owner', 'unsure')
    >>> verdict(m, Membership(-1, "", None), 101.0, 4.8).value
    'lost'
    >>> verdict(None, None, 0.0, 4.8).value  # no group consumer: nothing to fence
    'owner'
    """
    if begun is None and now is None:
        return Verdict.OWNER
    if begun is None or now is None or (now.generation, now.member_id) != (
            begun.generation, begun.member_id):
        return Verdict.LOST
    if now.alive_at is not None and at - now.alive_at < lease_s:
        return Verdict.OWNER
    return Verdict.UNSURE


class OwnershipFence:
    """Confirms, per batch, that the worker still owns what it is about to write."""

    def __init__(self, read: Callable[[], Membership | None], session_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = POLL_S) -> None:
        self._read = read
        self._lease_s = session_timeout_s * LEASE_FRACTION
        self._clock = clock
        self._poll_s = poll_s

    def begin(self) -> Membership | None:
        """The membership a batch begins under (take it when its first event arrives)."""
        return self._read()

    async def confirm(self, begun: Membership | None) -> bool:
        """True once the worker is confirmed still a member, False if it lost the partitions.

        Waits while unsure.
        """
        while True:
            answer = verdict(begun, self._read(), self._clock(), self._lease_s)
            if answer is not Verdict.UNSURE:
                return answer is Verdict.OWNER
            await asyncio.sleep(self._poll_s)  # polling the consumer's view, not a fixed wait
