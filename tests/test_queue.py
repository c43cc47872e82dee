"""Unit tests of the in-process job queue (the layer below the gateway)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from helpers import REQUEST

from moviola.errors import JobNotFound, ResourceExhausted
from moviola.jobs import Cancelled, Completed, JobState, Priority, Queued, Timings
from moviola.scheduler.memory import MemoryJobQueue
from moviola.settings import QueueSettings


def done(job_id: str) -> Completed:
    return Completed(f"file:///{job_id}.mp4", 16, 16, 1, 8, 1, "m", Timings(), 1)


async def test_interactive_jobs_start_ahead_of_batch_and_positions_follow() -> None:
    queue = MemoryJobQueue()
    batch, _ = await queue.submit(replace(REQUEST, priority=Priority.BATCH))
    first, _ = await queue.submit(REQUEST)
    second, _ = await queue.submit(REQUEST)
    assert [(await queue.get(j.id)).queue_position for j in (first, second, batch)] == [1, 2, 3]
    taken = await queue.take("m")
    assert taken.job_id == first.id
    assert (await queue.get(second.id)).queue_position == 1
    assert (await queue.get(batch.id)).queue_position == 2
    positions = [e.kind.position async for e in _queued(queue, batch.id)]
    assert positions == [1, 2, 3, 2]  # announced on submit, pushed back twice, moved up once
    assert (await queue.take("m")).job_id == second.id
    assert (await queue.take("m")).job_id == batch.id


async def _queued(queue: MemoryJobQueue, job_id: str):  # type: ignore[no-untyped-def]
    record = await queue.get(job_id)
    async for event in queue.watch(job_id):
        if isinstance(event.kind, Queued):
            yield event
        if event.sequence == record.last_sequence:
            return


async def test_batch_job_waiting_too_long_is_not_starved() -> None:
    queue = MemoryJobQueue(QueueSettings(batch_max_wait=0.0))
    batch, _ = await queue.submit(replace(REQUEST, priority=Priority.BATCH))
    await queue.submit(REQUEST)
    assert (await queue.take("m")).job_id == batch.id


async def test_same_idempotency_key_returns_the_same_job() -> None:
    queue = MemoryJobQueue()
    keyed = replace(REQUEST, idempotency_key="order-17")
    first, created = await queue.submit(keyed)
    again, created_again = await queue.submit(keyed)
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert queue.depth() == 1


async def test_full_queue_refuses_with_a_retry_delay_and_queues_nothing() -> None:
    queue = MemoryJobQueue(QueueSettings(max_queue_depth=2))
    await queue.submit(REQUEST)
    await queue.submit(REQUEST)
    with pytest.raises(ResourceExhausted) as info:
        await queue.submit(REQUEST)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    assert queue.depth() == 2
    assert len(queue._jobs) == 2


async def test_finished_jobs_are_forgotten_oldest_first() -> None:
    queue = MemoryJobQueue(QueueSettings(retain_finished_jobs=2))
    ids: list[str] = []
    for _ in range(4):
        record, _ = await queue.submit(replace(REQUEST, idempotency_key=f"k{len(ids)}"))
        job = await queue.take("m")
        await queue.publish(job.job_id, done(job.job_id))
        ids.append(record.id)
    with pytest.raises(JobNotFound):
        await queue.get(ids[0])
    assert (await queue.get(ids[3])).state is JobState.COMPLETED
    assert len(queue._jobs) == 2
    assert set(queue._keys) == {"k2", "k3"}


async def test_watch_follows_live_events_until_the_terminal_one() -> None:
    queue = MemoryJobQueue()
    record, _ = await queue.submit(REQUEST)
    seen = []

    async def follow() -> None:
        async for event in queue.watch(record.id):
            seen.append(type(event.kind).__name__)

    watcher = asyncio.create_task(follow())
    job = await queue.take("m")
    await queue.publish(job.job_id, Cancelled("stop"))
    await asyncio.wait_for(watcher, 5)
    assert seen == ["Queued", "Started", "Cancelled"]


async def test_wait_idle_returns_once_every_job_is_terminal() -> None:
    queue = MemoryJobQueue()
    record, _ = await queue.submit(REQUEST)
    idle = asyncio.create_task(queue.wait_idle())
    await asyncio.sleep(0)
    assert not idle.done()
    await queue.cancel(record.id)
    await asyncio.wait_for(idle, 5)
