"""The job queue, as the roles that use it see it.

``GatewayQueue``: what the job service needs (submit, read, watch, cancel,
estimate). ``OperatorQueue``: dead letters and requeue. ``WorkerQueue``: take
the next job of a model (the queue publishes STARTED), publish its events,
learn of cancellation, and finally finish it or hand it back.
``MemoryJobQueue`` (the embedded server) implements all three; the Redis queue
(many gateways and workers) in two parts, ``RedisFront`` (gateway, operator)
and ``RedisClaims`` (worker), on one connection per process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from moviola.jobs import EventKind, JobEvent, JobRecord, JobRequest, JobState, Priority
from moviola.quota import NO_LIMITS, Limits
from moviola.webhooks.outbox import Outbox


@dataclass(frozen=True)
class Assignment:
    """A job handed to a worker."""

    job_id: str
    request: JobRequest
    created_at: float
    attempt: int = 1
    #: The backend's handle of the claim, opaque to everyone else (Redis: stream and entry ID).
    ticket: object = None


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed ``attempts`` times and was given up on."""

    job_id: str
    model: str
    error: str
    attempts: int
    time: float


class GatewayQueue(Protocol):
    """What a gateway's job service uses."""

    async def submit(self, request: JobRequest, limits: Limits = NO_LIMITS) -> tuple[JobRecord, bool]:
        """Queue a job; return it and whether it is new (False: same idempotency key seen before).

        Raises ``ResourceExhausted`` when the model's queue is full, or the tenant is at its in-flight
        limit or over its submit rate (``limits``); then nothing is queued. Jobs of one model and
        priority start in fair-share order across tenants (``scheduler.fair``), weighted by ``limits.weight``.
        """

    async def submit_watched(
        self, request: JobRequest, limits: Limits = NO_LIMITS
    ) -> tuple[JobRecord, bool, AsyncIterator[JobEvent]]:
        """``submit``, and the job's events from the first (``watch``'s), for a caller that follows its new
        job to the end (Generate); a backend may then skip reading the history it just wrote."""
        ...

    async def get(self, job_id: str) -> JobRecord:
        """Raises ``JobNotFound``."""

    def watch(self, job_id: str, after_sequence: int = 0, *, model: str = "") -> AsyncIterator[JobEvent]:
        """Events with sequence > ``after_sequence``, then live ones, ending after the terminal one.

        ``model``, when the caller knows it (it just submitted the job), saves a lookup.
        Raises ``JobNotFound`` on first iteration.
        """

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or ask its worker to stop. Finished jobs are left alone."""

    async def list_jobs(
        self,
        tenant: str,
        *,
        after: tuple[float, str] | None,
        limit: int,
        state: JobState | None,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        """Up to ``limit`` of ``tenant``'s jobs past the cursor ``after`` (created_at, id), in order:
        newest first (created before it) or ``oldest_first`` (created after it)."""
        ...

    async def forget(self, job_id: str, tenant: str) -> None:
        """Remove a finished job (record, events, listing) as if it had expired."""

    async def estimate_wait(self, request: JobRequest) -> float | None:
        """Seconds ``request`` would wait to start if submitted now (0: a worker is free); None when unknown."""

    async def waiting(self, model: str) -> dict[Priority, int]:
        """Jobs of ``model`` waiting to start, per priority class."""

    async def live_workers(self, model: str) -> list[str]:
        """Workers of ``model`` that are alive now."""

    async def close(self) -> None:
        """Release connections and background tasks."""


class OperatorQueue(Protocol):
    """What an operator's calls use."""

    async def dead_letters(self) -> list[DeadLetter]:
        """Jobs given up on after too many attempts."""

    async def requeue(self, job_id: str) -> JobRecord:
        """Submit a dead letter's request again as a new job."""


@dataclass(frozen=True)
class Completion:
    """A job that completed: ``token`` acknowledges it (``CompletionFeed.ack_completions``)."""

    token: str
    job_id: str


class CompletionFeed(Protocol):
    """Jobs as they complete, each handed to one reader (the search indexer) until acknowledged.

    A reader that dies before acknowledging leaves its completions to another one after a while.
    """

    async def completions(self, wait: float) -> list[Completion]:
        """Completions not yet handed out; waits up to ``wait`` seconds for one."""
        ...

    async def ack_completions(self, tokens: Sequence[str]) -> None:
        """Done with these."""


class FrontQueue(GatewayQueue, OperatorQueue, Outbox, CompletionFeed, Protocol):
    """Everything the process facing callers uses."""


class WorkerQueue(Protocol):
    """What a worker uses."""

    async def take(self, model: str) -> Assignment:
        """Wait for the next job of ``model``, mark it started, and hand it to the caller."""

    async def take_mate(self, model: str, batch_key: str) -> Assignment | None:
        """Start a waiting job of ``model`` with this ``JobRequest.batch_key`` (to run in one batch with one
        already taken), without waiting; None when there is none (near the head of the queue)."""

    async def publish(self, job_id: str, kind: EventKind, *, attempt: int | None = None) -> JobEvent:
        """Append an event; the queue numbers and timestamps it.

        With ``attempt``, raises ``LeaseLost`` unless that attempt still owns the job.
        """

    async def publish_many(self, job_id: str, kinds: list[EventKind], *, attempt: int | None = None) -> None:
        """Append several events in order, in one round trip where the backend can."""

    async def wait_cancel_requested(self, job_id: str) -> None:
        """Return once cancellation of the job has been requested."""

    async def finish(
        self,
        assignment: Assignment,
        kind: EventKind,
        run_seconds: float,
        *,
        preceding: Sequence[EventKind] = (),
    ) -> None:
        """End the job: publish ``preceding`` (not yet published), its terminal event, and acknowledge it, together.

        Raises ``LeaseLost`` when this attempt no longer owns the job.
        """

    async def release(self, assignment: Assignment) -> bool:
        """Hand a running job back to the queue; False when this queue cannot (it ends with the process)."""

    async def leave(self, model: str) -> None:
        """This worker takes no more jobs of ``model``."""


def past(key: tuple[float, str], cursor: tuple[float, str], oldest_first: bool) -> bool:
    """Whether a job (created_at, id) comes after a listing's cursor in its order (``list_jobs``)."""
    return key > cursor if oldest_first else key < cursor
