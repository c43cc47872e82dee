"""The Redis queue's start estimate (``ESTIMATE``, one script): what is ahead of a new job, counted exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import REQUEST
from redis_parts import redis_parts

from moviola.jobs import Completed, Priority, Timings

BATCH = replace(REQUEST, priority=Priority.BATCH)


def done(job_id: str) -> Completed:
    return Completed(f"file:///{job_id}.mp4", 16, 16, 1, 8, 1, "m", Timings(), 1)


async def test_the_estimate_counts_waiting_running_and_handed_back_jobs(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    front, claims = parts.front, parts.claims
    try:
        # No run has finished and no worker is live: nothing to say.
        assert await front.estimate_wait(REQUEST) is None
        first, _ = await front.submit(REQUEST)
        taken = await claims.take("m")  # the worker says it is live
        assert taken.job_id == first.id
        await claims.finish(taken, done(first.id), 2.0)  # a run of REQUEST's size takes 2 s
        # A live worker is free and nothing waits: at once.
        assert await front.estimate_wait(REQUEST) == 0.0
        await front.submit(REQUEST)
        running = await claims.take("m")
        # The running job is taken to be half done.
        assert await front.estimate_wait(REQUEST) == pytest.approx(1.0)
        await front.submit(REQUEST)
        assert await front.estimate_wait(REQUEST) == pytest.approx(1.0 + 2.0)
        # A waiting batch job is ahead of a new batch job only.
        await front.submit(BATCH)
        assert await front.estimate_wait(REQUEST) == pytest.approx(3.0)
        assert await front.estimate_wait(BATCH) == pytest.approx(5.0)
        # Handed back, the running job waits again, whole: two interactive jobs ahead, none running.
        assert await claims.release(running)
        assert await front.estimate_wait(REQUEST) == pytest.approx(4.0)
        assert await front.estimate_wait(BATCH) == pytest.approx(6.0)
    finally:
        await parts.close()


async def test_only_workers_within_the_live_window_share_the_work(redis_url: str) -> None:
    one, two = redis_parts(redis_url, "w1"), redis_parts(redis_url, "w2")
    try:
        first, _ = await one.front.submit(REQUEST)
        await one.claims.finish(await one.claims.take("m"), done(first.id), 2.0)
        await one.front.submit(REQUEST)
        await one.claims.take("m")  # running, half done: 1 s left
        await two.claims.heartbeat("m")
        await one.front.submit(REQUEST)  # waiting: 2 s
        # Two live workers: the new job starts when the running one ends, on the first worker free.
        assert await one.front.estimate_wait(REQUEST) == pytest.approx(1.0)
        # The second worker's heartbeat is older than the live window: one worker does it all.
        await one.connection.redis.zadd(one.connection.keys.workers("m"), {"w2": 0.0})
        assert await one.front.estimate_wait(REQUEST) == pytest.approx(3.0)
    finally:
        await two.close()
        await one.close()
