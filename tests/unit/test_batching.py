"""Micro-batches: what is queued goes at once; a bounded wait only when asked for."""

from __future__ import annotations

import asyncio

from assetwatch.agents.worker.pipeline import next_batch


async def _batch_after(queued: list[int], later: list[int], max_events: int,
                       max_wait_s: float) -> list[int]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in queued:
        queue.put_nowait(item)

    async def feed() -> None:
        for item in later:
            await asyncio.sleep(0)  # lets next_batch run first: the item arrives afterwards
            queue.put_nowait(item)

    feeder = asyncio.create_task(feed())
    batch = await next_batch(queue, max_events, max_wait_s)
    await feeder
    return batch  # type: ignore[return-value]


def test_without_a_wait_the_batch_is_what_is_queued_now() -> None:
    assert asyncio.run(_batch_after([1, 2, 3], [4, 5], 100, 0.0)) == [1, 2, 3]


def test_the_size_bound_holds_even_with_more_queued() -> None:
    assert asyncio.run(_batch_after(list(range(10)), [], 4, 0.0)) == [0, 1, 2, 3]


def test_a_wait_takes_readings_that_arrive_within_it_until_the_batch_is_full() -> None:
    # the size bound ends the 60 s wait: the test does not take a minute
    assert asyncio.run(_batch_after([1], [2, 3, 4], 3, 60.0)) == [1, 2, 3]
