"""The Redis pool: past its connections a command waits for a free one (reported), then fails clearly."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from moviola.scheduler.redis.pool import WaitingPool


async def test_commands_past_the_pool_wait_for_a_connection(redis_url: str) -> None:
    waits: list[float] = []
    pool = WaitingPool.from_url(redis_url, max_connections=2, timeout=5.0, on_wait=waits.append)
    client = aioredis.Redis.from_pool(pool)
    started = time.monotonic()

    # Ten blocking reads of 0.2 s through two connections: five rounds, none refused.
    async def read(i: int) -> object:
        return await client.execute_command("BLPOP", f"empty-{i}", 0.2)  # type: ignore[no-untyped-call]

    results = await asyncio.gather(*(read(i) for i in range(10)))
    took = time.monotonic() - started
    assert results == [None] * 10
    assert took >= 0.9  # they took turns on two connections
    assert len(waits) == 8  # every command past the first two waited, and said so
    assert len(pool._in_use_connections) + len(pool._available_connections) <= 2
    await client.aclose()


async def test_a_command_that_waits_too_long_fails_naming_the_limit(redis_url: str) -> None:
    pool = WaitingPool.from_url(redis_url, max_connections=1, timeout=0.2)
    client = aioredis.Redis.from_pool(pool)

    async def hold() -> None:
        await client.execute_command("BLPOP", "empty", 1)  # type: ignore[no-untyped-call]

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.05)  # the holder has the one connection
    with pytest.raises(RedisConnectionError, match="--redis-max-connections"):
        await client.get("k")
    await holder
    assert await client.get("k") is None  # free again: served at once
    await client.aclose()


async def test_commands_packed_by_hiredis_are_what_redis_py_sends(redis_url: str) -> None:
    """Byte for byte redis-py's packing, on a real Redis; what hiredis cannot pack still fails clearly."""
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    pool = WaitingPool.from_url(redis_url, max_connections=2, timeout=5.0)
    assert pool.connection_class.__name__ == "HiredisConnection"
    fast, plain = pool.connection_class(), Connection()
    args = ("XGROUP CREATE", "s", "g", "$", 1.25, 2**70, -3, "é", b"\xff", memoryview(b"ab"), time.time())
    assert b"".join(fast.pack_command(*args)) == b"".join(plain.pack_command(*args))
    client = aioredis.Redis.from_pool(pool)
    await client.set("packed", "é" * 3)
    assert await client.get("packed") == "é".encode() * 3
    with pytest.raises(DataError):
        await client.set("packed", None)  # type: ignore[arg-type]
    await client.aclose()
