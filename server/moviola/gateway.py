"""The gateway: what the API does, without gRPC.

Validates before anything is queued, refuses work while the server cannot
take it, and hands everything else to the job queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from moviola.catalog import ModelSpec
from moviola.errors import InvalidRequest
from moviola.jobs import JobEvent, JobRecord
from moviola.lifecycle import Lifecycle, State
from moviola.scheduler.base import JobQueue
from moviola.validation import RequestDraft, validate


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    ready: bool


def _job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidRequest("job_id", "must not be empty")
    return job_id


class Gateway:
    def __init__(
        self, queue: JobQueue, models: dict[str, ModelSpec], default_model: str, lifecycle: Lifecycle
    ) -> None:
        self._queue = queue
        self._models = models
        self._default_model = default_model
        self._lifecycle = lifecycle

    async def submit(self, draft: RequestDraft) -> tuple[JobRecord, bool]:
        request = validate(draft, self._models, self._default_model)
        self._lifecycle.require_ready()
        return await self._queue.submit(request)

    def watch(self, job_id: str, after_sequence: int = 0) -> AsyncIterator[JobEvent]:
        return self._queue.watch(_job_id(job_id), after_sequence)

    async def get(self, job_id: str) -> JobRecord:
        return await self._queue.get(_job_id(job_id))

    async def cancel(self, job_id: str) -> JobRecord:
        return await self._queue.cancel(_job_id(job_id))

    def models(self) -> list[ModelStatus]:
        ready = self._lifecycle.state is State.READY
        ordered = sorted(self._models.values(), key=lambda spec: spec.id != self._default_model)
        return [ModelStatus(spec, ready) for spec in ordered]
