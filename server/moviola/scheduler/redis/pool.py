"""A bounded Redis connection pool that waits for a free connection, and pays for waiting only then.

redis-py's ``ConnectionPool`` with ``max_connections`` fails a command at once when every
connection is in use; its ``BlockingConnectionPool`` waits, but takes a condition lock and a timer
on every command (about 20-30 µs of CPU each, measured here). This pool takes the plain pool's
path while a connection is free and waits (up to ``timeout`` seconds) only when none is; each
wait is reported to ``on_wait`` (``moviola_redis_pool_wait_seconds``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError


class HiredisPacking:
    """Commands packed by hiredis (C), as redis-py's sync client does and its asyncio client does not.

    redis-py's asyncio ``pack_command`` is Python, per argument: a script call with a job's events
    has 20-30. The bytes are the same; what hiredis refuses (``None``, ``bool``) goes to redis-py's
    packing for its ``DataError``.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str) and " " in first:  # "XGROUP CREATE": sent as two arguments
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)  # type: ignore[no-any-return]


def packing(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` (plain, TLS or Unix socket, as the URL says) packing with hiredis."""
    return type(f"Hiredis{connection_class.__name__}", (HiredisPacking, connection_class), {})


class WaitingPool(aioredis.ConnectionPool):
    def __init__(
        self, *, timeout: float, on_wait: Callable[[float], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.connection_class = packing(self.connection_class)
        self.wait_timeout = timeout
        self.on_wait = on_wait
        self._waiters = 0
        self._freed = asyncio.Event()

    def _full(self) -> bool:
        return len(self._in_use_connections) >= self.max_connections and not self._available_connections

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError:
            if not self._full():
                raise  # Redis unreachable, not a full pool
        started = time.monotonic()
        self._waiters += 1
        try:
            while True:
                remaining = started + self.wait_timeout - time.monotonic()
                freed = self._freed
                try:
                    async with asyncio.timeout(max(0.0, remaining)):
                        await freed.wait()
                except TimeoutError:
                    raise RedisConnectionError(
                        f"no free Redis connection within {self.wait_timeout:g}s: all "
                        f"{self.max_connections} are in use (--redis-max-connections)"
                    ) from None
                try:
                    connection = await super().get_connection(*args, **kwargs)
                except RedisConnectionError:
                    if not self._full():
                        raise
                    continue  # another waiter took it first
                if self.on_wait is not None:
                    self.on_wait(time.monotonic() - started)
                return connection
        finally:
            self._waiters -= 1

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        if self._waiters:  # wake them: one of them gets it
            freed, self._freed = self._freed, asyncio.Event()
            freed.set()
