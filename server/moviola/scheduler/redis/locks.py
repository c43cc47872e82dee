"""A lock many processes share through Redis (redis-py's ``Lock``: a key with a token and a timeout).

Held around each commit to the shared search index (``moviola.search.lance``). The timeout
frees a lock whose holder died; a holder slower than that may overlap the next one, which
Lance's own conflict checks then catch.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from moviola.errors import Unavailable

#: Seconds a holder keeps the lock at most, and a waiter waits for it.
HOLD = 60.0
WAIT = 30.0


class RedisLock:
    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self._redis, self._key = redis, key

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        lock = self._redis.lock(self._key, timeout=HOLD, blocking_timeout=WAIT)
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise Unavailable(f"Redis is unreachable: {exc}", retry_after=1.0) from exc
        if not acquired:
            raise Unavailable(f"{self._key} stayed locked for {WAIT:g}s", retry_after=1.0)
        try:
            yield
        finally:
            with contextlib.suppress(LockError, RedisError):  # expired meanwhile, or Redis away: it times out
                await lock.release()
