"""The Redis queue's completion feed: the shared feed stream, read by one consumer group.

Every event the scripts publish is also appended to ``Keys.feed``; the group ``INDEX_GROUP`` on
it hands each entry to one gateway's indexer, which acknowledges it once the video is indexed
(entries of other kinds are acknowledged at once). Entries a dead gateway held are claimed by
another after ``RECLAIM_IDLE_MS``. The group starts where the feed ends when it is first made:
videos that completed before the first indexer ran are not indexed. The feed is capped
(``keys.FEED_LENGTH``): an indexer that falls that far behind loses the oldest completions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from moviola.scheduler.base import Completion
from moviola.scheduler.redis.connection import RedisBase, as_text, translated
from moviola.scheduler.redis.locks import RedisLock

#: Consumer group of the search indexers on the feed.
INDEX_GROUP = "indexers"
#: An entry held this long by an indexer that never acknowledged it is handed to another.
RECLAIM_IDLE_MS = 60_000
_BATCH = 500


class CompletionSide(RedisBase):
    _index_group_made = False

    @translated
    async def completions(self, wait: float) -> list[Completion]:
        if not self._index_group_made:
            try:
                await self.redis.xgroup_create(self.keys.feed, INDEX_GROUP, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._index_group_made = True
        reclaimed: Any = await self.redis.xautoclaim(
            self.keys.feed, INDEX_GROUP, self.consumer, RECLAIM_IDLE_MS, "0-0", count=_BATCH
        )
        entries = list(reclaimed[1])
        if not entries:
            reply: Any = await self.redis.xreadgroup(
                INDEX_GROUP,
                self.consumer,
                {self.keys.feed: ">"},
                count=_BATCH,
                block=max(1, int(wait * 1000)),
            )
            entries = list(reply[0][1]) if reply else []
        found, other = [], []
        for entry_id, fields in entries:
            if fields and json.loads(fields[b"k"]).get("type") == "completed":
                found.append(Completion(as_text(entry_id), as_text(fields[b"j"])))
            else:
                other.append(entry_id)
        if other:
            await self.redis.xack(self.keys.feed, INDEX_GROUP, *other)
        return found

    def search_index_lock(self) -> RedisLock:
        """The lock every gateway takes to write the shared search index."""
        return RedisLock(self.redis, self.keys.search_index_lock)

    @translated
    async def ack_completions(self, tokens: Sequence[str]) -> None:
        if tokens:
            await self.redis.xack(self.keys.feed, INDEX_GROUP, *tokens)
