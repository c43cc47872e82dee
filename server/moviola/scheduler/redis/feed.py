"""The event feed: one gateway's live view of every job's new events, through one blocking read.

Every event a script appends to a job's stream is also appended to one shared,
capped stream (``Keys.feed``), but a new job's first QUEUED (``RedisFront.submit_watched``).
A gateway runs one reader that tails it with a blocking ``XREAD`` and hands each event to the
local watchers of its job. So a gateway with thousands of open ``Generate``/``WatchJob`` streams
holds one blocked Redis connection and makes one round trip per burst of events, not one per
watcher per event.

The feed is a fast path, never the record: a watcher reads the job's own stream
when it starts, whenever the feed skips a sequence number (it was trimmed
before this gateway read it, or the reader reconnected), and when nothing came
for ``poll`` seconds. A gateway without watchers stops reading after ``IDLE_STOP`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from moviola.scheduler.redis import keys

log = logging.getLogger(__name__)

#: A feed entry as a watcher gets it: the sequence number and the stored fields (``t``, ``k``);
#: None when the reader lost its connection (events may have been missed: read the job's stream).
Delivery = tuple[int, dict[bytes, bytes]] | None

#: Entries read per round trip at most.
_BATCH = 1000

#: Seconds without a watcher after which the reader stops (an idle gateway reads no one's events).
IDLE_STOP = 10.0


class EventFeed:
    def __init__(self, redis: aioredis.Redis, *, block: float, key: str = keys.DEFAULT.feed) -> None:
        self._redis = redis
        self._key = key
        self._block_ms = max(1, int(block * 1000))
        self._inboxes: dict[bytes, set[asyncio.Queue[Delivery]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._last_id: bytes | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str, *, wait: float) -> AsyncIterator[asyncio.Queue[Delivery]]:
        """The job's events published from now on (``open``), until the block ends."""
        inbox = await self.open(job_id, wait=wait)
        try:
            yield inbox
        finally:
            self.drop(job_id, inbox)

    async def open(self, job_id: str, *, wait: float) -> asyncio.Queue[Delivery]:
        """An inbox for the job's events published from now on, until ``drop``; waits up to ``wait`` s for
        the reader to know its start.

        Once the reader knows where the feed ended, every later event reaches this inbox
        (unless trimmed first), so a watcher that reads the job's stream after subscribing
        misses nothing.
        """
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._run(), name="event-feed")
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._inboxes.setdefault(job_id.encode(), set()).add(inbox)
        if not self._ready.is_set():  # only while the reader starts: no timer on the usual path
            try:
                with contextlib.suppress(TimeoutError):  # Redis is down: the watcher's own read says so
                    async with asyncio.timeout(wait):
                        await self._ready.wait()
            except BaseException:
                self.drop(job_id, inbox)
                raise
        return inbox

    def drop(self, job_id: str, inbox: asyncio.Queue[Delivery]) -> None:
        """No more events to ``inbox`` (``open``'s)."""
        key = job_id.encode()
        inboxes = self._inboxes.get(key, set())
        inboxes.discard(inbox)
        if not inboxes:
            self._inboxes.pop(key, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _run(self) -> None:
        backoff = 0.1
        watched = time.monotonic()
        while True:
            if self._inboxes:
                watched = time.monotonic()
            elif time.monotonic() - watched > IDLE_STOP:
                # Decided and done without yielding: a watcher arriving later starts a new reader.
                self._ready.clear()
                self._last_id = None
                return
            try:
                await self._read_once()
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("event feed: Redis read failed (%s); retrying in %.1fs", exc, backoff)
                self._interrupt()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _read_once(self) -> None:
        if self._last_id is None:
            last = await self._redis.xrevrange(self._key, count=1)
            self._last_id = last[0][0] if last else b"0-0"
            self._ready.set()
        reply: Any = await self._redis.xread({self._key: self._last_id}, count=_BATCH, block=self._block_ms)
        for entry_id, fields in reply[0][1] if reply else []:
            self._last_id = entry_id
            inboxes = self._inboxes.get(fields[b"j"])
            if inboxes:
                delivery = (int(fields[b"s"]), fields)
                for inbox in inboxes:
                    inbox.put_nowait(delivery)

    def _interrupt(self) -> None:
        """Tell every watcher the feed may have missed events."""
        for inboxes in self._inboxes.values():
            for inbox in inboxes:
                inbox.put_nowait(None)
