"""A worker process's Redis queue for tests that drive it directly: one connection, its front and claims."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moviola.scheduler.redis import Connection, RedisClaims, RedisFront
from moviola.settings import QueueSettings


@dataclass
class RedisParts:
    connection: Connection
    front: RedisFront
    claims: RedisClaims

    async def close(self) -> None:
        await self.claims.close()
        await self.front.close()
        await self.connection.close()


def redis_parts(url: str, consumer: str, **settings: Any) -> RedisParts:
    """``consumer``'s connection to the Redis at ``url`` and both parts on it (``QueueSettings`` given)."""
    connection = Connection(QueueSettings(redis_url=url, **settings), consumer=consumer)
    return RedisParts(connection, RedisFront(connection), RedisClaims(connection))
