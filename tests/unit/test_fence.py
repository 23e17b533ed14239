"""The ownership fence and newest-state recovery (issue 10, defect 6), without a broker."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faust
import faust.tables.recovery
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.faust_internals import newest_state_table
from assetwatch.agents.worker.fence import Membership, OwnershipFence, Verdict, verdict
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.pipeline import BatchPipeline, Ownership
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState, source_position, supersedes
from assetwatch.scoring.buckets import FAILURE_PROBABILITY_BUCKETS, LATENCY_BUCKETS_S, bucketize
from assetwatch.scoring.outcome import BatchReport
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

LEASE_S = 4.8
MEMBER = Membership(4, "member-a", alive_at=100.0)


def _state(profile: Profile, offset: int, partition: int = 1) -> bytes:
    state = AssetState.empty(profile)
    state.applied_partition, state.applied_offset = partition, offset
    return state.to_bytes()


@pytest.mark.parametrize(("now", "at", "expected"), [
    (MEMBER, 101.0, Verdict.OWNER),
    (MEMBER, 100.0 + LEASE_S + 0.1, Verdict.UNSURE),  # frozen: the lease ran out meanwhile
    (Membership(4, "member-a", None), 101.0, Verdict.UNSURE),
    (Membership(-1, "", 100.0), 101.0, Verdict.LOST),  # the coordinator reset the member
    # a rebalance that kept this member: Faust revokes nothing before the batch is acked
    (Membership(5, "member-a", 100.5), 101.0, Verdict.OWNER),
    (Membership(4, "member-b", 100.5), 101.0, Verdict.LOST),
    (None, 101.0, Verdict.LOST),
])
def test_verdicts(now: Membership | None, at: float, expected: Verdict) -> None:
    assert verdict(MEMBER, now, at, LEASE_S) is expected


def test_a_state_further_along_its_partition_supersedes_whatever_was_written_last(
    cnc: Profile, pump: Profile,
) -> None:
    assert source_position(_state(pump, 41, partition=3)) == (3, 41)
    assert supersedes(_state(cnc, 9), _state(cnc, 5))
    assert not supersedes(_state(cnc, 5), _state(cnc, 9))
    assert supersedes(_state(cnc, 5), _state(cnc, 9, partition=2))  # no order across partitions
    assert supersedes(_state(cnc, 5), b"not a state") and supersedes(b"junk", _state(cnc, 9))


class Reads:
    """Membership answers in turn, the last one repeated."""

    def __init__(self, *answers: Membership | None) -> None:
        self.answers, self.calls = list(answers), 0

    def __call__(self) -> Membership | None:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_an_unsure_fence_waits_for_the_coordinator_then_answers() -> None:
    stale = Membership(4, "member-a", alive_at=0.0)
    fence = OwnershipFence(Reads(MEMBER, stale, stale, MEMBER), 6.0, clock=lambda: 101.0,
                           poll_s=0.001)
    begun = fence.begin()
    assert asyncio.run(fence.confirm(begun)) is True
    reset = OwnershipFence(Reads(MEMBER, stale, Membership(-1, "", None)), 6.0,
                           clock=lambda: 101.0, poll_s=0.001)
    assert asyncio.run(reset.confirm(reset.begin())) is False


class Queue:
    """The agent's queue: its events, then Faust's end-of-stream once they are taken.

    With ``batch_max_wait_s`` 0 a batch never waits on an empty queue, so the end of stream
    is only seen when the next batch begins.
    """

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def get(self) -> Any:
        if not self.events:
            raise StopAsyncIteration
        return self.events.pop(0)

    def empty(self) -> bool:
        return not self.events

    def get_nowait(self) -> Any:
        return self.events.pop(0)


class Table:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data, self.changelog = data, []

    def send_changelog(self, partition: int, key: bytes, value: bytes) -> None:
        self.changelog.append((key, value))


def _event(asset: bytes, offset: int, generation: int = 3) -> Any:
    return SimpleNamespace(key=asset, value=b"{}", topic="telemetry", partition=1,
                           offset=offset, generation_id=generation)


def _run(states: dict[bytes, bytes], table: Table, reads: Reads,
         on_publish: Callable[[], None] = lambda: None,
         generations: tuple[int, int] = (3, 3)) -> tuple[list[int], list[Any], int]:
    """Run the pipeline over two events; (acked offsets, abandoned events, batches scored).

    ``generations``: the assignment generation each event was delivered under; the
    consumer's is 3.
    """
    acked: list[int] = []
    abandoned: list[Any] = []
    scored = []

    class Scorer:
        async def process(self, batch: list[Inbound], load: Any, ends: Any = None) -> BatchReport:
            scored.append(batch)
            on_publish()
            return BatchReport(predictions=len(batch), anomalies=0, dead_letters={},
                               states={k: (1, v) for k, v in states.items()}, replayed=0,
                               latency=bucketize(np.empty(0), LATENCY_BUCKETS_S),
                               failure_probability=bucketize(np.empty(0),
                                                             FAILURE_PROBABILITY_BUCKETS))

    settings = Settings(_env_file=None, batch_max_wait_s=0)  # type: ignore[call-arg]
    fence = OwnershipFence(reads, 6.0, clock=lambda: 101.0, poll_s=0.001)
    pipeline = BatchPipeline(settings, Scorer(), table, Metrics(CollectorRegistry()),  # type: ignore[arg-type]
                             lambda messages: acked.extend(m.offset for m in messages),
                             ownership=Ownership(fence, abandoned.extend, lambda: 3))
    first, second = generations
    asyncio.run(pipeline.run(Queue([_event(b"a", 7, first), _event(b"b", 8, second)])))
    return acked, abandoned, len(scored)


def test_a_worker_that_lost_its_partitions_publishes_writes_and_acks_nothing(
    cnc: Profile,
) -> None:
    table = Table({})
    acked, abandoned, scored = _run({b"a": _state(cnc, 7)}, table,
                                    Reads(MEMBER, Membership(-1, "", None)))
    assert (acked, scored, table.data, table.changelog) == ([], 0, {}, [])
    assert [m.offset for m in abandoned] == [7, 8]


def test_a_batch_whose_partitions_went_during_publishing_writes_and_acks_nothing(
    cnc: Profile,
) -> None:
    reads = Reads(MEMBER)
    table = Table({})

    def lose() -> None:  # the batch is in the helper when the coordinator resets the member
        reads.answers = [Membership(-1, "", None)]

    acked, abandoned, scored = _run({b"a": _state(cnc, 7)}, table, reads, lose)
    assert (scored, acked, table.data, table.changelog) == (1, [], {}, [])
    assert len(abandoned) == 2


def test_an_owner_writes_its_states_and_acks_but_never_over_a_newer_state(
    cnc: Profile,
) -> None:
    newer = _state(cnc, 30)
    table = Table({b"b": newer})
    acked, abandoned, _ = _run({b"a": _state(cnc, 7), b"b": _state(cnc, 8)}, table,
                               Reads(MEMBER))
    assert (acked, abandoned) == ([7, 8], [])
    assert table.data == {b"a": _state(cnc, 7), b"b": newer}
    assert table.changelog == [(b"a", _state(cnc, 7))]


def test_events_delivered_before_the_latest_rebalance_are_given_up_unacked(
    cnc: Profile,
) -> None:
    """A seek to the committed offsets follows every assignment: it delivers them again."""
    table = Table({})
    acked, abandoned, scored = _run({b"b": _state(cnc, 8)}, table, Reads(MEMBER),
                                    generations=(2, 3))
    assert [m.offset for m in abandoned] == [7]
    assert (acked, scored, table.data) == ([8], 1, {b"b": _state(cnc, 8)})


def _changelog_event(key: bytes, value: bytes | None) -> Any:
    return SimpleNamespace(key=key, value=value,
                           message=SimpleNamespace(value=value, partition=1))


def test_recovery_keeps_each_assets_newest_state_not_its_last_written(cnc: Profile) -> None:
    app = faust.App("fence-unit", store="memory://")
    table = newest_state_table(app, "states", supersedes, key_type=bytes, value_type=bytes)
    first = [_changelog_event(b"a", _state(cnc, 5)), _changelog_event(b"a", _state(cnc, 9)),
             _changelog_event(b"a", _state(cnc, 6)),  # a zombie's late write, in one batch
             _changelog_event(b"b", _state(cnc, 3))]
    table.apply_changelog_batch(first)
    table.apply_changelog_batch([_changelog_event(b"a", _state(cnc, 8)),  # and in a later one
                                 _changelog_event(b"b", _state(cnc, 4)),
                                 _changelog_event(b"c", _state(cnc, 1)),
                                 _changelog_event(b"c", None)])  # deletions still apply
    assert dict(table.data) == {b"a": _state(cnc, 9), b"b": _state(cnc, 4)}


def test_faust_recovery_still_applies_changelogs_through_the_tables_method() -> None:
    """Fails if Faust recovery stops calling Table.apply_changelog_batch (re-read the hook)."""
    source = inspect.getsource(faust.tables.recovery.Recovery)
    assert ".apply_changelog_batch(" in source
    assert "apply_changelog_batch" in vars(faust.tables.base.Collection)


def test_aiokafka_still_heartbeats_through_the_method_the_consumer_thread_wraps() -> None:
    """Fails if aiokafka stops calling ``_do_heartbeat`` (AssetwatchConsumerThread wraps it)."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assert "await self._do_heartbeat()" in inspect.getsource(GroupCoordinator._heartbeat_routine)
    assert "RebalanceInProgressError" in inspect.getsource(GroupCoordinator._do_heartbeat)
