"""Watchers of one job on one gateway share one reader: one history read, one feed subscription.

A gateway's first watcher of a job starts a reader that reads the job's events (its stream, then
the feed: ``FrontSide._read_job``) into a list kept in memory; every watcher of that job walks the
list, waking when it grows. So N watchers of one job cost one Redis read of its history and one
feed inbox, not N of each, and an event reaches them all in one pass over the list. The reader
stops, and the list goes, when the job's last watcher leaves.

A reader that fails (Redis down, the job gone) ends its watchers with the error; the next watcher
starts a new reader. A job this gateway has just queued comes with its reader (``Fresh``): it knows
the job's first event already and subscribed to the feed before the job was queued, so no history read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from moviola.jobs import JobEvent


@dataclass(frozen=True)
class Fresh:
    """The reader of a job just queued (``RedisFront.submit_watched``), and what frees what it holds; freed
    once its reader ends, however it ends (also when it never starts)."""

    events: AsyncIterator[JobEvent]
    free: Callable[[], None]


class _Shared:
    """One job's reader and what it has read so far."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.done = False
        self.error: BaseException | None = None
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None
        self._grown = asyncio.Event()

    def grew(self) -> None:
        self._grown.set()
        self._grown = asyncio.Event()

    async def wait(self) -> None:
        await self._grown.wait()


class Watches:
    def __init__(self, read: Callable[[str, str], AsyncIterator[JobEvent]]) -> None:
        """``read(job_id, model)``: every event of the job from the first, then live ones, to the end."""
        self._read = read
        self._jobs: dict[str, _Shared] = {}

    def follow(self, job_id: str, model: str, fresh: Fresh) -> AsyncIterator[JobEvent]:
        """The events of a job just queued, through ``fresh``'s reader, started now: it runs to the job's
        end (and frees what it holds) even if nobody iterates; later watchers of the job share it."""
        self._start(job_id, model, fresh)
        return self.watch(job_id, 0, model)

    async def watch(self, job_id: str, after: int, model: str) -> AsyncIterator[JobEvent]:
        """The job's events with a sequence past ``after``, from the job's one shared reader."""
        shared = self._jobs.get(job_id)
        if shared is None or shared.error is not None:
            shared = self._start(job_id, model, None)
        shared.watchers += 1
        try:
            seen = 0
            while True:
                while seen < len(shared.events):
                    event = shared.events[seen]
                    seen += 1
                    if event.sequence > after:
                        yield event
                if shared.done:
                    if shared.error is not None:
                        raise shared.error
                    return
                await shared.wait()
        finally:
            shared.watchers -= 1
            if not shared.watchers and self._jobs.get(job_id) is shared:
                del self._jobs[job_id]
                if shared.task is not None:
                    shared.task.cancel()

    def _start(self, job_id: str, model: str, fresh: Fresh | None) -> _Shared:
        """A new reader of the job (``fresh``'s, or one that reads its history first)."""
        shared = self._jobs[job_id] = _Shared()
        events = self._read(job_id, model) if fresh is None else fresh.events
        shared.task = asyncio.create_task(self._pump(job_id, events, shared), name=f"watch-{job_id}")
        if fresh is not None:
            shared.task.add_done_callback(lambda _: fresh.free())
        return shared

    async def _pump(self, job_id: str, events: AsyncIterator[JobEvent], shared: _Shared) -> None:
        try:
            async for event in events:
                shared.events.append(event)
                shared.grew()
        except Exception as exc:  # the watchers raise it
            shared.error = exc
        finally:
            shared.done = True
            shared.grew()
            if not shared.watchers and self._jobs.get(job_id) is shared:  # nobody came (``follow``)
                del self._jobs[job_id]

    async def close(self) -> None:
        for shared in list(self._jobs.values()):
            if shared.task is not None:
                shared.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shared.task
