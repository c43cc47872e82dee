"""The lease belongs to the claim: a takeover waits for the lease of the worker that holds the job."""

from __future__ import annotations

import asyncio

import pytest
from helpers import REQUEST
from redis_parts import RedisParts, redis_parts

from moviola.jobs import JobState


def queue(url: str, name: str, lease: float) -> RedisParts:
    return redis_parts(url, name, lease=lease)


async def test_a_short_lease_is_taken_over_by_a_worker_with_a_long_one(redis_url: str) -> None:
    holder, taker = queue(redis_url, "holder", 1.0), queue(redis_url, "taker", 60.0)
    try:
        job, _ = await holder.front.submit(REQUEST)
        assert (await holder.claims.take("m")).job_id == job.id
        await holder.close()  # the holder dies: nobody renews its 1 s lease
        # The taker's own lease (60 s) does not matter: the holder's 1 s does.
        again = await asyncio.wait_for(taker.claims.take("m"), 10)
        assert (again.job_id, again.attempt) == (job.id, 2)
    finally:
        await taker.close()


async def test_a_long_lease_is_not_taken_over_by_a_worker_with_a_short_one(redis_url: str) -> None:
    holder, taker = queue(redis_url, "holder", 60.0), queue(redis_url, "taker", 0.5)
    try:
        job, _ = await holder.front.submit(REQUEST)
        await holder.claims.take("m")
        await holder.close()  # silent now, but its lease has 60 s to run
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(taker.claims.take("m"), 3)
        record = await taker.front.get(job.id)
        assert record.state is JobState.RUNNING
        assert record.last_sequence == 2  # queued, started: never started again
    finally:
        await taker.close()
