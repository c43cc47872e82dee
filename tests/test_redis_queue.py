"""The Redis job queue's hand-back to the queue, against a real redis-server, worker by worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from helpers import REQUEST
from redis_parts import RedisParts, redis_parts

from moviola.errors import ResourceExhausted
from moviola.jobs import JobState, Priority
from moviola.scheduler.redis import keys
from moviola.scheduler.redis.connection import ticket_of


@asynccontextmanager
async def workers(url: str, *names: str, max_depth: int = 64) -> AsyncIterator[list[RedisParts]]:
    processes = [redis_parts(url, name, max_queue_depth=max_depth) for name in names]
    try:
        yield processes
    finally:
        for process in processes:
            await process.close()


async def test_a_job_another_worker_reclaimed_is_not_handed_back(redis_url: str) -> None:
    async with workers(redis_url, "leaving", "free") as (leaving, free):
        job, _ = await leaving.front.submit(REQUEST)
        taken = await leaving.claims.take("m")
        stream, msg_id = ticket_of(taken)
        # The reclaiming worker's XAUTOCLAIM (the lease expired) has run, its START not yet.
        async with aioredis.Redis.from_url(redis_url) as r:
            await r.xautoclaim(stream, keys.GROUP, "reclaiming", 0, msg_id, count=1)
        assert not await leaving.claims.release(taken)
        assert (await leaving.front.get(job.id)).state is JobState.RUNNING
        assert await free.front.waiting("m") == {Priority.INTERACTIVE: 0, Priority.BATCH: 0}
        other, _ = await leaving.front.submit(REQUEST)
        assert (await free.claims.take("m")).job_id == other.id  # not the job the reclaiming worker holds


async def test_a_handed_back_job_counts_as_waiting_and_towards_the_queue_bound(redis_url: str) -> None:
    async with workers(redis_url, "leaving", "next", max_depth=2) as (leaving, following):
        first, _ = await leaving.front.submit(REQUEST)
        taken = await leaving.claims.take("m")
        second, _ = await leaving.front.submit(REQUEST)
        assert await leaving.claims.release(taken)
        assert await following.front.waiting("m") == {Priority.INTERACTIVE: 2, Priority.BATCH: 0}
        with pytest.raises(ResourceExhausted):
            await leaving.front.submit(REQUEST)
        assert [(await following.front.get(j.id)).queue_position for j in (first, second)] == [1, 2]
        again = await following.claims.take("m")
        assert (again.job_id, again.attempt) == (first.id, 1)  # the hand-back did not count as an attempt


async def test_the_backlog_group_lags_by_the_queued_jobs_as_keda_reads_it(redis_url: str) -> None:
    async with workers(redis_url, "one", "two") as (one, two), aioredis.Redis.from_url(redis_url) as r:

        async def lag() -> int:
            groups = await r.xinfo_groups(keys.DEFAULT.wake("m"))  # what KEDA's redis-streams trigger reads
            (backlog,) = [g for g in groups if g["name"] == keys.BACKLOG_GROUP.encode()]
            assert backlog["lag"] is not None  # computable: KEDA needs a number
            return int(backlog["lag"])

        jobs = [(await one.front.submit(REQUEST))[0] for _ in range(3)]
        await one.front.submit(replace(REQUEST, priority=Priority.BATCH))
        assert await lag() == 4
        await one.front.cancel(jobs[1].id)  # a waiting job cancelled
        assert await lag() == 3
        taken = await one.claims.take("m")
        assert await lag() == 2
        assert await one.claims.release(taken)  # handed back: queued again
        assert await lag() == 3
        again = await two.claims.take("m")  # the handed-back job
        assert again.job_id == taken.job_id
        assert await lag() == 2
        await two.claims.take("m")
        await two.claims.take("m")  # the batch job last
        assert await lag() == 0
        assert await r.xlen(keys.DEFAULT.wake("m")) <= 1  # read entries are trimmed
        late, _ = await one.front.submit(REQUEST)
        assert await lag() == 1
        await one.front.cancel(late.id)
        assert await lag() == 0


async def test_a_job_starts_after_its_queue_stream_was_deleted(redis_url: str) -> None:
    async with workers(redis_url, "w") as (worker,), aioredis.Redis.from_url(redis_url) as r:
        first, _ = await worker.front.submit(REQUEST)
        assert (await worker.claims.take("m")).job_id == first.id  # the worker has made its groups
        second, _ = await worker.front.submit(REQUEST)
        await r.delete(keys.DEFAULT.queue("m", Priority.INTERACTIVE))  # evicted, or deleted by hand
        again = await worker.claims.take("m")  # the claim makes the stream and its group again
        assert again.job_id == second.id
        assert (await worker.front.get(second.id)).state is JobState.RUNNING
