"""The in-process job queue of the embedded server.

Everything lives in this process: a bounded queue per priority, each job's
event log, and an index of idempotency keys. Finished jobs are kept for
``retain_finished_jobs`` jobs, then forgotten oldest first, so memory stays bounded.
A queued job with a ``start_by`` time fails when that passes before it starts.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from moviola.errors import JobNotFound, ResourceExhausted
from moviola.jobs import (
    Cancelled,
    Completed,
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
from moviola.quota import NO_LIMITS, Limits, TenantBuckets, over_in_flight, over_rate
from moviola.scheduler import estimate
from moviola.scheduler.base import Assignment, DeadLetter, past
from moviola.scheduler.fair import FairClock
from moviola.scheduler.memory_completions import MemoryCompletions
from moviola.scheduler.redis.codec import NAMES, encode_kind
from moviola.settings import QueueSettings
from moviola.webhooks.outbox import MemoryOutbox, Pending


@dataclass
class _Entry:
    record: JobRecord
    events: list[JobEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    enqueued_at: float = field(default_factory=time.monotonic)
    #: Where it waits: fair-share tag, then arrival.
    order: tuple[float, int] = (0.0, 0)


class MemoryJobQueue:
    def __init__(self, settings: QueueSettings | None = None, *, worker: str = "embedded") -> None:
        settings = settings or QueueSettings()
        self._worker = worker
        self._max_depth = settings.max_queue_depth
        self._retain_finished = settings.retain_finished_jobs
        self._batch_max_wait = settings.batch_max_wait
        self._workers: dict[str, int] = {}  # model -> workers taking its jobs
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self._jobs: dict[str, _Entry] = {}
        self._pending: dict[Priority, list[str]] = {p: [] for p in Priority}  # by _Entry.order
        self._clocks: dict[tuple[str, Priority], FairClock] = {}
        self._arrivals = itertools.count()
        self._in_flight: dict[str, int] = {}  # tenant -> jobs queued or running
        self._buckets = TenantBuckets()
        self._outbox = MemoryOutbox()
        self.claim_webhooks = self._outbox.claim_webhooks
        self.webhook_delivered = self._outbox.webhook_delivered
        self.webhook_retry = self._outbox.webhook_retry
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._keys: dict[str, str] = {}
        self._work = asyncio.Condition()
        self._idle = asyncio.Condition()
        self._run_times = estimate.RunTimes()
        self._completions = MemoryCompletions()
        self.completions = self._completions.completions
        self.ack_completions = self._completions.ack_completions

    # Gateway side.

    async def submit_watched(
        self, request: JobRequest, limits: Limits = NO_LIMITS
    ) -> tuple[JobRecord, bool, AsyncIterator[JobEvent]]:
        record, created = await self.submit(request, limits)
        return record, created, self.watch(record.id)

    async def submit(self, request: JobRequest, limits: Limits = NO_LIMITS) -> tuple[JobRecord, bool]:
        existing = self._keys.get(request.idempotency_scope) if request.idempotency_key else None
        if existing is not None and existing in self._jobs:
            return self._jobs[existing].record, False
        tenant = request.tenant
        in_flight = self._in_flight.get(tenant, 0)
        if limits.in_flight and in_flight >= limits.in_flight:
            raise over_in_flight(
                tenant, in_flight, limits, max(1.0, self._run_times.expected(request) or 1.0)
            )
        bucket = self._buckets.of(tenant, limits, time.monotonic())
        if bucket is not None and (wait := bucket.wait(time.monotonic())) > 0:
            raise over_rate(tenant, limits, wait)
        if sum((await self.waiting(request.model)).values()) >= self._max_depth:
            raise ResourceExhausted(
                f"the queue of model {request.model} is full ({self._max_depth} jobs waiting); retry later",
                retry_after=max(1.0, self._run_times.expected(request) or 0.0),
            )
        job_id = uuid.uuid4().hex
        tag = self._clock(request).enter(tenant, limits.weight)
        entry = _Entry(JobRecord(id=job_id, request=request), order=(tag, next(self._arrivals)))
        self._jobs[job_id] = entry
        if request.idempotency_key:
            self._keys[request.idempotency_scope] = job_id
        if bucket is not None:
            bucket.take()
        self._in_flight[tenant] = in_flight + 1
        bisect.insort(self._pending[request.priority], job_id, key=lambda j: self._jobs[j].order)
        if request.start_by is not None:
            delay = max(0.0, request.start_by - time.time())
            self._deadlines[job_id] = asyncio.get_running_loop().call_later(delay, self._expire_soon, job_id)
        await self._announce_positions()  # the new job's first event; jobs it overtook move back
        async with self._work:
            self._work.notify_all()
        return self._jobs[job_id].record, True

    async def get(self, job_id: str) -> JobRecord:
        return self._entry(job_id).record

    async def list_jobs(
        self,
        tenant: str,
        *,
        after: tuple[float, str] | None,
        limit: int,
        state: JobState | None,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        found: list[JobRecord] = []
        entries = list(self._jobs.values())  # insertion order is creation order
        for entry in entries if oldest_first else reversed(entries):
            record = entry.record
            if record.request.tenant != tenant or (state is not None and record.state != state):
                continue
            if after is not None and not past((record.created_at, record.id), after, oldest_first):
                continue
            found.append(record)
            if len(found) == limit:
                break
        return found

    async def forget(self, job_id: str, tenant: str) -> None:
        entry = self._jobs.pop(job_id, None)
        self._finished.pop(job_id, None)
        if entry is not None and entry.record.request.idempotency_key:
            self._keys.pop(entry.record.request.idempotency_scope, None)

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
            self._unqueue(job_id)
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
        self._unqueue(job_id, started=True)
        entry = self._jobs[job_id]
        await self.publish(job_id, Started(worker=self._worker, attempt=1))
        await self._announce_positions()
        return Assignment(job_id=job_id, request=entry.record.request, created_at=entry.record.created_at)

    async def take_mate(self, model: str, batch_key: str) -> Assignment | None:
        if not batch_key:
            return None
        order = [j for j in self._order() if self._jobs[j].record.model == model]
        job_id = next((j for j in order if self._jobs[j].record.request.batch_key() == batch_key), None)
        if job_id is None:
            return None
        self._unqueue(job_id, started=True)
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
        request = record.request
        if request.webhook_url and NAMES[type(kind)] in request.webhook_events:
            self._outbox.add(
                Pending(
                    f"{job_id}.{event.sequence}",
                    request.webhook_url,
                    request.tenant,
                    job_id,
                    event.sequence,
                    event.time,
                    json.loads(encode_kind(kind)),
                )
            )
        if event.terminal:
            if isinstance(kind, Completed):
                self._completions.add(job_id)
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

    async def estimate_wait(self, request: JobRequest) -> float | None:
        """Seconds until ``request`` would start if submitted now; None while nothing says."""
        model = request.model
        running = [e.record for e in self._jobs.values() if e.record.state is JobState.RUNNING]
        running = [r for r in running if r.model == model]
        ahead = [self._jobs[j].record.request for j in self._order() if self._jobs[j].record.model == model]
        if request.priority is Priority.INTERACTIVE:
            ahead = [r for r in ahead if r.priority is Priority.INTERACTIVE]
        workers = self._workers.get(model, 0)
        if not ahead and len(running) < workers:
            return 0.0  # a worker is free
        expected = [self._run_times.expected(r) for r in [*ahead, *(r.request for r in running)]]
        if any(e is None for e in expected):
            return None
        now = time.time()
        remaining = [
            (self._run_times.expected(r.request) or 0.0) - (now - (r.started_at or now)) for r in running
        ]
        return estimate.wait(
            running=remaining, waiting=[self._run_times.expected(r) or 0.0 for r in ahead], workers=workers
        )

    async def waiting(self, model: str) -> dict[Priority, int]:
        return {p: sum(1 for j in q if self._jobs[j].record.model == model) for p, q in self._pending.items()}

    async def live_workers(self, model: str) -> list[str]:
        return [self._worker] * self._workers.get(model, 0)

    def add_worker(self, model: str) -> None:
        """A worker now takes jobs of ``model``."""
        self._workers[model] = self._workers.get(model, 0) + 1

    async def leave(self, model: str) -> None:
        self._workers[model] = max(0, self._workers.get(model, 0) - 1)

    async def close(self) -> None:
        for timer in self._deadlines.values():
            timer.cancel()
        self._deadlines.clear()

    async def dead_letters(self) -> list[DeadLetter]:
        return []  # a job that crashes this process ends with it: nothing is retried

    async def requeue(self, job_id: str) -> JobRecord:
        raise JobNotFound(job_id)

    # Embedded server only.

    def depth(self) -> int:
        return sum(len(q) for q in self._pending.values())

    def _unqueue(self, job_id: str, *, started: bool = False) -> None:
        request = self._jobs[job_id].record.request
        for queue in self._pending.values():
            if job_id in queue:
                queue.remove(job_id)
                self._clock(request).leave(request.tenant, self._jobs[job_id].order[0], started=started)
        timer = self._deadlines.pop(job_id, None)
        if timer is not None:
            timer.cancel()

    def _expire_soon(self, job_id: str) -> None:
        task = asyncio.create_task(self._expire(job_id), name=f"expire-{job_id}")
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, job_id: str) -> None:
        """The job's start_by passed: if it still waits, it fails and the jobs behind it move up."""
        self._deadlines.pop(job_id, None)
        entry = self._jobs.get(job_id)
        if entry is None or entry.record.state is not JobState.QUEUED:
            return
        self._unqueue(job_id)
        waited = time.time() - entry.record.created_at
        message = f"did not start within its max_wait or deadline (waited {waited:.1f}s)"
        await self.publish(
            job_id, Failed(code=FailureCode.DEADLINE_EXCEEDED, message=message, retryable=True)
        )
        await self._announce_positions()

    async def wait_idle(self) -> None:
        """Return once no job is queued or running."""
        async with self._idle:
            await self._idle.wait_for(lambda: all(e.record.state.terminal for e in self._jobs.values()))

    async def fail_queued(self, message: str) -> int:
        """End every queued job with a retryable FAILED (the server is going away); return how many."""
        job_ids = [job_id for queue in self._pending.values() for job_id in queue]
        for job_id in job_ids:
            self._unqueue(job_id)
            await self.publish(job_id, Failed(code=FailureCode.UNAVAILABLE, message=message, retryable=True))
        return len(job_ids)

    # Internals.

    def _clock(self, request: JobRequest) -> FairClock:
        return self._clocks.setdefault((request.model, request.priority), FairClock())

    def _entry(self, job_id: str) -> _Entry:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    def _order(self) -> list[str]:
        """Queued jobs in the order they will start."""
        interactive, batch = self._pending[Priority.INTERACTIVE], self._pending[Priority.BATCH]
        if batch and time.monotonic() - self._jobs[batch[0]].enqueued_at > self._batch_max_wait:  # overdue
            return [batch[0], *interactive, *list(batch)[1:]]
        return [*interactive, *batch]

    def _next(self, model: str) -> str | None:
        return next((j for j in self._order() if self._jobs[j].record.model == model), None)

    async def _announce_positions(self) -> None:
        for position, job_id in enumerate(self._order(), start=1):
            if self._jobs[job_id].record.queue_position != position:
                await self.publish(job_id, Queued(position=position))

    async def _finish(self, job_id: str, entry: _Entry) -> None:
        started = entry.record.started_at
        if started is not None and entry.record.state is JobState.COMPLETED:
            self._run_times.observe(entry.record.request, time.time() - started)
        tenant = entry.record.request.tenant
        if self._in_flight.get(tenant, 0) <= 1:
            self._in_flight.pop(tenant, None)
        else:
            self._in_flight[tenant] -= 1
        self._finished[job_id] = None
        while len(self._finished) > self._retain_finished:
            old, _ = self._finished.popitem(last=False)
            gone = self._jobs.pop(old)
            self._keys.pop(gone.record.request.idempotency_scope, None)
        async with self._idle:
            self._idle.notify_all()


__all__ = ["MemoryJobQueue"]
