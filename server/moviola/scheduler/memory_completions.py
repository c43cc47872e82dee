"""The embedded server's completion feed: completed job ids, in this process, for the search indexer.

Nothing is kept until the indexer first asks (a server without search keeps nothing). A
completion handed out and not acknowledged within ``REHAND`` seconds is handed out again, so
an index that was briefly unreachable still gets every video.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from moviola.scheduler.base import Completion

#: Seconds after which a completion handed out and not acknowledged is handed out again.
REHAND = 1.0


class MemoryCompletions:
    def __init__(self) -> None:
        self._completed: asyncio.Queue[str] | None = None
        self._handed: dict[str, float] = {}  # job id -> when it was handed out, until acknowledged

    def add(self, job_id: str) -> None:
        if self._completed is not None:
            self._completed.put_nowait(job_id)

    async def completions(self, wait: float) -> list[Completion]:
        if self._completed is None:
            self._completed = asyncio.Queue()
        now = time.monotonic()
        again = [job_id for job_id, at in self._handed.items() if now - at >= REHAND]
        if not again:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    again = [await self._completed.get()]
            again += [self._completed.get_nowait() for _ in range(self._completed.qsize())]
        self._handed.update((job_id, time.monotonic()) for job_id in again)
        return [Completion(job_id, job_id) for job_id in again]

    async def ack_completions(self, tokens: Sequence[str]) -> None:
        for token in tokens:
            self._handed.pop(token, None)
