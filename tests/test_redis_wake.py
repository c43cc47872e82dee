"""Idle workers and the jobs that wake them, against a real redis-server: a queued job wakes one idle
worker of its model, not every one (no thundering herd), and no job is left waiting for a poll.

Workers block for a minute here (``Tuning.poll``), so a job whose wake-up were lost would not start
within the tests' 10 s. They use a database of their own, so that clients blocked there are theirs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from helpers import REQUEST

from moviola.scheduler.base import Assignment
from moviola.scheduler.redis import Connection, RedisClaims, RedisFront, Tuning, keys
from moviola.settings import QueueSettings

MODEL = REQUEST.model
#: Longer than any test waits: a worker wakes only when a job wakes it.
POLL = 60.0
#: The Redis database these tests use (``redis_url`` empties them all).
DB = 7


def in_db(url: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{DB}"


@asynccontextmanager
async def fleet(url: str, count: int) -> AsyncIterator[tuple[RedisFront, list[RedisClaims], Counter[str]]]:
    """A gateway's front and ``count`` workers' claims, each on its own connection; the Counter counts
    each worker's TAKE scripts."""
    settings = QueueSettings(redis_url=in_db(url))
    gateway = Connection(settings, consumer="gateway")
    connections = [Connection(settings, consumer=f"w{i}", tuning=Tuning(poll=POLL)) for i in range(count)]
    takes: Counter[str] = Counter()
    for connection in connections:
        connection.scripts.take = _counted(connection.scripts.take, takes, connection.consumer)  # type: ignore[assignment]
    claims = [RedisClaims(connection) for connection in connections]
    front = RedisFront(gateway)
    try:
        yield front, claims, takes
    finally:
        for part in claims:
            await part.close()
        await front.close()
        for connection in [gateway, *connections]:
            await connection.close()


def _counted(
    script: Callable[..., Awaitable[Any]], counter: Counter[str], name: str
) -> Callable[..., Awaitable[Any]]:
    async def call(keys: list[str], args: list[Any]) -> Any:
        counter[name] += 1
        return await script(keys=keys, args=args)

    return call


@asynccontextmanager
async def taking(claims: list[RedisClaims]) -> AsyncIterator[dict[asyncio.Task[Assignment], str]]:
    """Each worker waiting for a job (its task, its name); the tasks still waiting are stopped after."""
    tasks = {asyncio.create_task(part.take(MODEL)): part.consumer for part in claims}
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def blocked(url: str, count: int) -> None:
    """Wait (10 s at most) until exactly ``count`` clients of the tests' database are blocked in Redis."""
    async with aioredis.Redis.from_url(url) as r, asyncio.timeout(10):
        while True:  # Redis state, polled: nothing here can be awaited for it
            if sum(1 for c in await r.client_list() if c["db"] == str(DB) and "b" in c["flags"]) == count:
                return
            await asyncio.sleep(0.01)


async def test_a_queued_job_wakes_one_of_eight_idle_workers(redis_url: str) -> None:
    async with fleet(redis_url, 8) as (front, claims, takes), taking(claims) as waiting:
        await blocked(redis_url, 8)
        takes.clear()
        job, _ = await front.submit(REQUEST)
        done, _ = await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1
        (winner,) = done
        assert winner.result().job_id == job.id
        await blocked(redis_url, 7)  # the seven others are still blocked (or blocked again)
        # Only the worker that was woken looked at the queue: nobody else ran TAKE.
        assert takes == {waiting[winner]: 1}


async def test_jobs_queued_together_each_wake_a_worker(redis_url: str) -> None:
    async with fleet(redis_url, 4) as (front, claims, _):
        async with taking(claims) as waiting:
            await blocked(redis_url, 4)
            jobs = [(await front.submit(REQUEST))[0].id for _ in range(4)]
            async with asyncio.timeout(10):
                taken: list[Assignment] = await asyncio.gather(*waiting)
        assert sorted(a.job_id for a in taken) == sorted(jobs)


async def test_a_job_queued_between_a_workers_look_and_its_block_wakes_it(redis_url: str) -> None:
    async with fleet(redis_url, 1) as (front, (worker,), _):
        look = worker.scripts.take
        queued: list[str] = []

        async def look_then_queue(keys: list[str], args: list[Any]) -> Any:
            reply = await look(keys=keys, args=args)
            if not queued:  # the first look found nothing; a job comes before the worker blocks
                queued.append((await front.submit(REQUEST))[0].id)
            return reply

        worker.scripts.take = look_then_queue  # type: ignore[assignment]
        async with asyncio.timeout(10):
            assignment = await worker.take(MODEL)
        assert assignment.job_id == queued[0]


async def test_a_worker_that_leaves_leaves_the_wake_group(redis_url: str) -> None:
    async with fleet(redis_url, 2) as (front, claims, _), aioredis.Redis.from_url(in_db(redis_url)) as r:
        async with taking(claims) as waiting:
            await blocked(redis_url, 2)
            for _ in claims:  # a wake-up each: a worker is a member of the group from its first one
                await front.submit(REQUEST)
            async with asyncio.timeout(10):
                await asyncio.gather(*waiting)
        wake = keys.Keys(keys.DEFAULT_PREFIX).wake(MODEL)
        assert sorted(c["name"] for c in await r.xinfo_consumers(wake, keys.WAKE_GROUP)) == [b"w0", b"w1"]
        await claims[1].leave(MODEL)
        assert [c["name"] for c in await r.xinfo_consumers(wake, keys.WAKE_GROUP)] == [b"w0"]


async def test_a_blocked_worker_takes_jobs_after_redis_lost_its_data(redis_url: str) -> None:
    async with fleet(redis_url, 1) as (front, claims, _), aioredis.Redis.from_url(in_db(redis_url)) as r:
        async with taking(claims) as waiting:
            await blocked(redis_url, 1)
            await r.flushall()  # a restart without persistence: the wake stream and its groups are gone
            job, _ = await front.submit(REQUEST)
            async with asyncio.timeout(10):
                (assignment,) = await asyncio.gather(*waiting)
        assert assignment.job_id == job.id


async def test_a_worker_whose_start_left_nothing_waiting_blocks_without_looking(redis_url: str) -> None:
    async with fleet(redis_url, 1) as (front, (worker,), takes):
        first, _ = await front.submit(REQUEST)
        assert (await worker.take(MODEL)).job_id == first.id  # nothing else waits
        takes.clear()
        async with taking([worker]) as waiting:
            await blocked(redis_url, 1)
            assert not takes  # straight to the wake stream: no TAKE that would find nothing
            second, _ = await front.submit(REQUEST)
            async with asyncio.timeout(10):
                (assignment,) = await asyncio.gather(*waiting)
        assert assignment.job_id == second.id
        assert takes == {worker.consumer: 1}


async def test_a_job_queued_while_the_worker_ran_is_taken_at_once(redis_url: str) -> None:
    async with fleet(redis_url, 1) as (front, (worker,), _):
        first, _ = await front.submit(REQUEST)
        assert (await worker.take(MODEL)).job_id == first.id  # nothing else waits
        second, _ = await front.submit(REQUEST)  # while the first runs: its wake entry waits unread
        async with asyncio.timeout(10):  # not the minute of a poll
            assert (await worker.take(MODEL)).job_id == second.id


async def test_jobs_queued_before_the_workers_group_existed_are_all_taken(redis_url: str) -> None:
    # Queued before any worker: their wake entries come before the wakers' group, which no worker reads.
    async with fleet(redis_url, 1) as (front, (worker,), _):
        jobs = [(await front.submit(REQUEST))[0].id for _ in range(3)]
        async with asyncio.timeout(10):  # each start left jobs waiting: the next take looks at once
            taken = [(await worker.take(MODEL)).job_id for _ in jobs]
        assert taken == jobs
