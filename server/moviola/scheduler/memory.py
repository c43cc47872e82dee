"""The in-process job queue of the embedded server.

Everything lives in this process: a bounded queue per priority, each job's
event log, and an index of idempotency keys. Finished jobs are kept for
``retain_finished`` jobs, then forgotten oldest first, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from moviola.errors import JobNotFound, ResourceExhausted
from moviola.jobs import (
    Cancelled,
    EventKind,
    Failed,
    FailureCode,
    JobEvent,
    JobRecord,
    JobRequest,
    JobState,
    Priority,
    Queued,
    Started,
)
from moviola.scheduler.base import Assignment, DeadLetter


@dataclass
class _Entry:
    record: JobRecord
    events: list[JobEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    enqueued_at: float = field(default_factory=time.monotonic)


class MemoryJobQueue:
    def __init__(
        self,
        *,
        max_depth: int = 64,
        retain_finished: int = 1000,
        batch_max_wait: float = 300.0,
        worker: str = "embedded",
    ) -> None:
        self._worker = worker
        self._max_depth = max_depth
        self._retain_finished = retain_finished
        self._batch_max_wait = batch_max_wait
        self._jobs: dict[str, _Entry] = {}
        self._pending: dict[Priority, deque[str]] = {p: deque() for p in Priority}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._keys: dict[str, str] = {}
        self._work = asyncio.Condition()
        self._idle = asyncio.Condition()
        self._run_seconds: dict[
            str, float
        ] = {}  # moving average of finished runs per model, for wait estimates

    # Gateway side.

    async def submit(self, request: JobRequest) -> tuple[JobRecord, bool]:
        existing = self._keys.get(request.idempotency_key) if request.idempotency_key else None
        if existing is not None and existing in self._jobs:
            return self._jobs[existing].record, False
        if self.depth() >= self._max_depth:
            raise ResourceExhausted(
                f"the queue is full ({self._max_depth} jobs waiting); retry later",
                retry_after=max(1.0, self._run_seconds.get(request.model, 0.0)),
            )
        job_id = uuid.uuid4().hex
        self._jobs[job_id] = _Entry(JobRecord(id=job_id, request=request))
        if request.idempotency_key:
            self._keys[request.idempotency_key] = job_id
        self._pending[request.priority].append(job_id)
        await self._announce_positions()  # the new job's first event; jobs it overtook move back
        async with self._work:
            self._work.notify_all()
        return self._jobs[job_id].record, True

    async def get(self, job_id: str) -> JobRecord:
        return self._entry(job_id).record

    async def watch(
        self, job_id: str, after_sequence: int = 0, *, model: str = ""
    ) -> AsyncIterator[JobEvent]:
        entry = self._entry(job_id)
        index = after_sequence  # the event with sequence n sits at index n - 1
        while True:
            if index >= len(entry.events) and entry.record.state.terminal:
                return  # nothing after the terminal event will ever come
            async with entry.changed:
                await entry.changed.wait_for(lambda start=index: len(entry.events) > start)  # type: ignore[misc]
                batch = entry.events[index:]
            for event in batch:
                index += 1
                yield event
                if event.terminal:
                    return

    async def cancel(self, job_id: str) -> JobRecord:
        entry = self._entry(job_id)
        if entry.record.state is JobState.QUEUED:
            self._pending[entry.record.request.priority].remove(job_id)
            await self.publish(job_id, Cancelled(reason="cancelled by request before it started"))
            await self._announce_positions()
        elif entry.record.state is JobState.RUNNING:
            entry.cancel_requested.set()
        return entry.record

    # Worker side.

    async def take(self, model: str) -> Assignment:
        async with self._work:
            await self._work.wait_for(lambda: self._next(model) is not None)
            job_id = self._next(model)
        assert job_id is not None
        for queue in self._pending.values():
            if job_id in queue:
                queue.remove(job_id)
        entry = self._jobs[job_id]
        await self.publish(job_id, Started(worker=self._worker, attempt=1))
        await self._announce_positions()
        return Assignment(job_id=job_id, request=entry.record.request, created_at=entry.record.created_at)

    async def publish(self, job_id: str, kind: EventKind, *, attempt: int | None = None) -> JobEvent:
        entry = self._entry(job_id)
        record = entry.record
        event = JobEvent(
            job_id=job_id, sequence=record.last_sequence + 1, time=time.time(), model=record.model, kind=kind
        )
        async with entry.changed:
            entry.record = record.apply(event)
            entry.events.append(event)
            entry.changed.notify_all()
        if event.terminal:
            await self._finish(job_id, entry)
        return event

    async def publish_many(self, job_id: str, kinds: list[EventKind], *, attempt: int | None = None) -> None:
        for kind in kinds:
            await self.publish(job_id, kind, attempt=attempt)

    async def wait_cancel_requested(self, job_id: str) -> None:
        await self._entry(job_id).cancel_requested.wait()

    async def finish(
        self,
        assignment: Assignment,
        kind: EventKind,
        run_seconds: float,
        *,
        preceding: Sequence[EventKind] = (),
    ) -> None:
        await self.publish_many(assignment.job_id, [*preceding, kind])

    async def release(self, assignment: Assignment) -> bool:
        return False  # nobody else could take it: this queue ends with the process

    async def estimate_wait(self, model: str) -> float | None:
        run = self._run_seconds.get(model)
        if run is None:
            return None
        waiting = sum(1 for q in self._pending.values() for j in q if self._jobs[j].record.model == model)
        return run * (waiting + 1)

    async def waiting(self, model: str) -> dict[Priority, int]:
        return {p: sum(1 for j in q if self._jobs[j].record.model == model) for p, q in self._pending.items()}

    async def live_workers(self, model: str) -> list[str]:
        return [self._worker]

    async def dead_letters(self) -> list[DeadLetter]:
        return []  # a job that crashes this process ends with it: nothing is retried

    async def requeue(self, job_id: str) -> JobRecord:
        raise JobNotFound(job_id)

    # Embedded server only.

    def depth(self) -> int:
        return sum(len(q) for q in self._pending.values())

    async def wait_idle(self) -> None:
        """Return once no job is queued or running."""
        async with self._idle:
            await self._idle.wait_for(lambda: all(e.record.state.terminal for e in self._jobs.values()))

    async def fail_queued(self, message: str) -> int:
        """End every queued job with a retryable FAILED (the server is going away); return how many."""
        job_ids = [job_id for queue in self._pending.values() for job_id in queue]
        for queue in self._pending.values():
            queue.clear()
        for job_id in job_ids:
            await self.publish(job_id, Failed(code=FailureCode.UNAVAILABLE, message=message, retryable=True))
        return len(job_ids)

    # Internals.

    def _entry(self, job_id: str) -> _Entry:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    def _order(self) -> list[str]:
        """Queued jobs in the order they will start."""
        interactive, batch = self._pending[Priority.INTERACTIVE], self._pending[Priority.BATCH]
        if batch and self._overdue(batch[0]):
            return [batch[0], *interactive, *list(batch)[1:]]
        return [*interactive, *batch]

    def _overdue(self, job_id: str) -> bool:
        return time.monotonic() - self._jobs[job_id].enqueued_at > self._batch_max_wait

    def _next(self, model: str) -> str | None:
        return next((j for j in self._order() if self._jobs[j].record.model == model), None)

    async def _announce_positions(self) -> None:
        for position, job_id in enumerate(self._order(), start=1):
            if self._jobs[job_id].record.queue_position != position:
                await self.publish(job_id, Queued(position=position))

    async def _finish(self, job_id: str, entry: _Entry) -> None:
        started = entry.record.started_at
        if started is not None:
            elapsed, model = time.time() - started, entry.record.model
            average = self._run_seconds.get(model)
            self._run_seconds[model] = elapsed if average is None else 0.8 * average + 0.2 * elapsed
        self._finished[job_id] = None
        while len(self._finished) > self._retain_finished:
            old, _ = self._finished.popitem(last=False)
            gone = self._jobs.pop(old)
            self._keys.pop(gone.record.request.idempotency_key, None)
        async with self._idle:
            self._idle.notify_all()


__all__ = ["MemoryJobQueue"]
