"""The gateway's event feed against a real redis-server: routing, start position, idle stop."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from moviola.scheduler.redis import feed as feed_module
from moviola.scheduler.redis import keys
from moviola.scheduler.redis.feed import EventFeed


async def append(client: aioredis.Redis, job_id: str, sequence: int) -> None:
    await client.xadd(keys.DEFAULT.feed, {"j": job_id, "s": sequence, "t": 1.0, "k": "{}"})


async def test_watchers_get_their_jobs_events_from_where_the_feed_ended(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "IDLE_STOP", 0.0)
    client = aioredis.Redis.from_url(redis_url)
    await append(client, "a", 1)  # before anyone subscribed: not delivered
    feed = EventFeed(client, block=0.05)
    try:
        async with feed.subscribe("a", wait=5) as inbox, feed.subscribe("a", wait=5) as second:
            await append(client, "b", 1)  # another job's
            await append(client, "a", 2)
            for box in (inbox, second):
                delivery = await asyncio.wait_for(box.get(), 5)
                assert delivery is not None
                assert delivery[0] == 2
                assert box.empty()
        reader = feed._reader
        assert reader is not None
        await asyncio.wait_for(reader, 5)  # no watcher left: it stops reading
        async with feed.subscribe("b", wait=5) as inbox:  # and starts again for the next one
            await append(client, "b", 2)
            delivery = await asyncio.wait_for(inbox.get(), 5)
            assert delivery is not None
            assert delivery[0] == 2
    finally:
        await feed.close()
        await client.aclose()
