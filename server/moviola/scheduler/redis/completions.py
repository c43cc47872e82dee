"""The Redis queue's completion feed: the shared feed stream, read by one consumer group.

Every event the scripts publish (but a new job's first QUEUED) is also appended to ``Keys.feed``; the
group ``keys.INDEX_GROUP`` on it hands each entry to one gateway's indexer, which acknowledges it once
the video is indexed (entries of other kinds are acknowledged at once). Entries a dead gateway held
are claimed by another after ``RECLAIM_IDLE_MS``. The group starts where the feed ends when it is
first made: videos that completed before the first indexer ran are not indexed. The feed is capped
(``keys.FEED_LENGTH``): an indexer that falls that far behind loses the oldest completions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from moviola.scheduler.base import Completion
from moviola.scheduler.redis.connection import Connection, as_text, translated
from moviola.scheduler.redis.keys import INDEX_GROUP

#: An entry held this long by an indexer that never acknowledged it is handed to another.
RECLAIM_IDLE_MS = 60_000
_BATCH = 500


class CompletionReader:
    def __init__(self, connection: Connection) -> None:
        self._redis, self._feed, self._consumer = connection.redis, connection.keys.feed, connection.consumer
        self._group_made = False

    @translated
    async def read(self, wait: float) -> list[Completion]:
        """Completions not yet handed out (``CompletionFeed.completions``); waits up to ``wait`` seconds."""
        if not self._group_made:
            try:
                await self._redis.xgroup_create(self._feed, INDEX_GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._group_made = True
        reclaimed: Any = await self._redis.xautoclaim(
            self._feed, INDEX_GROUP, self._consumer, RECLAIM_IDLE_MS, "0-0", count=_BATCH
        )
        entries = list(reclaimed[1])
        if not entries:
            reply: Any = await self._redis.xreadgroup(
                INDEX_GROUP, self._consumer, {self._feed: ">"}, count=_BATCH, block=max(1, int(wait * 1000))
            )
            entries = list(reply[0][1]) if reply else []
        found, other = [], []
        for entry_id, fields in entries:
            if fields and json.loads(fields[b"k"]).get("type") == "completed":
                found.append(Completion(as_text(entry_id), as_text(fields[b"j"])))
            else:
                other.append(entry_id)
        if other:
            await self._redis.xack(self._feed, INDEX_GROUP, *other)
        return found

    @translated
    async def ack(self, tokens: Sequence[str]) -> None:
        if tokens:
            await self._redis.xack(self._feed, INDEX_GROUP, *tokens)
