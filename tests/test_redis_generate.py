"""A job followed from its submit (``submit_watched``, Generate's path) on the Redis queue: its QUEUED from
SUBMIT's reply, the rest from the feed, and the same events as its stored history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace

from helpers import REQUEST
from redis_parts import RedisParts, redis_parts

from moviola.jobs import Completed, JobEvent, Queued, Timings


def done(job_id: str) -> Completed:
    return Completed(f"file:///{job_id}.mp4", 16, 16, 1, 8, 1, "m", Timings(), 1)


async def _feed_jobs(parts: RedisParts) -> list[str]:
    """The job of every entry on the feed."""
    entries = await parts.connection.redis.xrange(parts.connection.keys.feed)
    return [fields[b"j"].decode() for _, fields in entries]


async def _run_one(parts: RedisParts) -> None:
    taken = await parts.claims.take("m")
    await parts.claims.finish(taken, done(taken.job_id), 0.1)


async def test_a_followed_job_gets_its_history_without_reading_it(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    try:
        await parts.front.submit(REQUEST)  # a job ahead
        record, created, events = await parts.front.submit_watched(REQUEST)
        assert created
        # A new job's QUEUED is in its own stream only: nobody can follow it from the feed yet but the
        # caller that queued it.
        assert await _feed_jobs(parts) == []
        first = await anext(events)
        assert (first.sequence, first.kind) == (1, Queued(position=2))
        await _run_one(parts)  # the job ahead: this one moves up
        await _run_one(parts)
        assert record.id in await _feed_jobs(parts)  # what came later is on the feed
        followed: list[JobEvent] = [first, *[event async for event in events]]
        assert [type(e.kind).__name__ for e in followed] == ["Queued", "Queued", "Started", "Completed"]
        # Exactly what a watcher reading the stored history gets.
        assert followed == [event async for event in parts.front.watch(record.id)]
        assert parts.front._feed._inboxes == {}  # nothing left subscribed
    finally:
        await parts.close()


async def test_a_repeated_idempotency_key_follows_the_earlier_job(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    keyed = replace(REQUEST, idempotency_key="order-17")
    try:
        first, _ = await parts.front.submit(keyed)
        again, created, events = await parts.front.submit_watched(keyed)
        assert (again.id, created) == (first.id, False)
        await _run_one(parts)
        assert [type(e.kind).__name__ async for e in events] == ["Queued", "Started", "Completed"]
        assert parts.front._feed._inboxes == {}
    finally:
        await parts.close()


async def test_what_a_followed_job_holds_is_freed_when_its_caller_leaves(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    try:
        record, _, events = await parts.front.submit_watched(REQUEST)
        assert (await anext(events)).sequence == 1
        reader = parts.front._watches._jobs[record.id].task
        assert reader is not None
        assert isinstance(events, AsyncGenerator)
        await events.aclose()  # the caller went away before the job ended
        await asyncio.gather(reader, return_exceptions=True)
        assert parts.front._feed._inboxes == {}
        assert parts.front._watches._jobs == {}
    finally:
        await parts.close()


async def test_a_followed_job_nobody_iterates_is_freed_when_it_ends(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    try:
        record, _, _ = await parts.front.submit_watched(REQUEST)
        reader = parts.front._watches._jobs[record.id].task
        assert reader is not None
        await _run_one(parts)
        await asyncio.wait_for(reader, 10)
        assert parts.front._feed._inboxes == {}
        assert parts.front._watches._jobs == {}
    finally:
        await parts.close()
