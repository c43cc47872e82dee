"""The job-queue interface shared by the gateway and the workers.

The gateway side submits, reads, watches and cancels jobs; the worker side
takes the next job for its model, publishes the job's events and learns of
cancellation. The embedded server uses ``MemoryJobQueue``; a Redis backend
implements the same interface for many gateways and workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from moviola.jobs import EventKind, JobEvent, JobRecord, JobRequest


@dataclass(frozen=True)
class Assignment:
    """A job handed to a worker."""

    job_id: str
    request: JobRequest
    created_at: float
    attempt: int = 1


class JobQueue(Protocol):
    # Gateway side.
    async def submit(self, request: JobRequest) -> tuple[JobRecord, bool]:
        """Queue a job; return it and whether it is new (False: same idempotency key seen before).

        Raises ``ResourceExhausted`` when the model's queue is full; then nothing is queued.
        """

    async def get(self, job_id: str) -> JobRecord:
        """Raises ``JobNotFound``."""

    def watch(self, job_id: str, after_sequence: int = 0) -> AsyncIterator[JobEvent]:
        """Events with sequence > ``after_sequence``, then live ones, ending after the terminal one.

        Raises ``JobNotFound`` on first iteration.
        """

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or ask its worker to stop. Finished jobs are left alone."""

    # Worker side.
    async def take(self, model: str) -> Assignment:
        """Wait for the next job of ``model`` and hand it to the caller."""

    async def publish(self, job_id: str, kind: EventKind) -> JobEvent:
        """Append an event to the job; the queue numbers and timestamps it."""

    async def wait_cancel_requested(self, job_id: str) -> None:
        """Return once cancellation of the job has been requested."""
