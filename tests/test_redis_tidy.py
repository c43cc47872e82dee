"""Consumers of workers gone without leaving (scaled down, killed) are forgotten, against a real redis-server:
an autoscaled fleet's groups do not pile up, and no consumer that holds a lease is touched."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from helpers import REQUEST

from moviola.jobs import Completed, Priority, Timings
from moviola.scheduler.redis import Connection, RedisClaims, RedisFront, Tuning, keys
from moviola.settings import QueueSettings

MODEL = REQUEST.model


def done(job_id: str) -> Completed:
    return Completed(f"file:///{job_id}.mp4", 16, 16, 1, 8, 1, MODEL, Timings(), 1)


async def test_consumers_of_gone_workers_are_forgotten_and_a_lease_holder_is_kept(redis_url: str) -> None:
    settings = QueueSettings(redis_url=redis_url)
    connections = {
        name: Connection(
            settings, consumer=name, tuning=Tuning(tidy_idle=0.0 if name == "tidier" else 3600.0)
        )
        for name in ("gone-1", "gone-2", "busy", "tidier")
    }
    claims = {name: RedisClaims(connection) for name, connection in connections.items()}
    front = RedisFront(connections["tidier"])
    queue, wake = keys.DEFAULT.queue(MODEL, Priority.INTERACTIVE), keys.DEFAULT.wake(MODEL)
    try:
        async with aioredis.Redis.from_url(redis_url) as r:

            async def members(stream: str, group: str) -> set[str]:
                return {c["name"].decode() for c in await r.xinfo_consumers(stream, group)}

            async def blocked() -> None:  # Redis state, polled: nothing here can be awaited for it
                async with asyncio.timeout(10):
                    while True:
                        if any("b" in c["flags"] for c in await r.client_list()):
                            return
                        await asyncio.sleep(0.01)

            for name in ("gone-1", "gone-2"):  # each woken once, ran a job, then went without leaving
                waiting = asyncio.create_task(claims[name].take(MODEL))
                await blocked()
                await front.submit(REQUEST)
                async with asyncio.timeout(10):
                    taken = await waiting
                await claims[name].finish(taken, done(taken.job_id), 1.0)
            await front.submit(REQUEST)
            held = await claims["busy"].take(MODEL)  # running: its entry is its lease
            assert await members(queue, keys.GROUP) == {"gone-1", "gone-2", "busy"}
            assert {"gone-1", "gone-2"} <= await members(wake, keys.WAKE_GROUP)

            # With the shipped idle time (an hour) nobody has been gone long enough.
            patient = RedisClaims(Connection(settings, consumer="patient"))
            try:
                assert await patient.tidy(MODEL) == 0
            finally:
                await patient.connection.close()
            assert await members(queue, keys.GROUP) == {"gone-1", "gone-2", "busy"}

            assert await claims["tidier"].tidy(MODEL) == 4  # two groups each
            assert await members(queue, keys.GROUP) == {"busy"}
            assert not {"gone-1", "gone-2"} & await members(wake, keys.WAKE_GROUP)
            # The lease holder keeps its entry and finishes its job.
            assert (await r.xpending(queue, keys.GROUP))["pending"] == 1
            await claims["busy"].finish(held, done(held.job_id), 1.0)
            assert (await front.get(held.job_id)).state.value == "completed"
    finally:
        for part in claims.values():
            await part.close()
        await front.close()
        for connection in connections.values():
            await connection.close()
