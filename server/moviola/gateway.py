"""The gateway: what the API does, without gRPC.

Validates before anything is queued, refuses work while the server cannot
take it, and hands everything else to the job queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from moviola.catalog import ModelSpec
from moviola.errors import InvalidRequest, ResourceExhausted
from moviola.jobs import JobEvent, JobRecord, JobRequest
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.scheduler.base import DeadLetter, JobQueue
from moviola.tracing import Tracing
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
        self,
        queue: JobQueue,
        models: dict[str, ModelSpec],
        default_model: str,
        lifecycle: Lifecycle,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.metrics = metrics
        self._tracing = tracing or Tracing(None, "moviola")
        self._queue = queue
        self._models = models
        self._default_model = default_model
        self._lifecycle = lifecycle

    async def submit(self, draft: RequestDraft, *, max_wait: float | None = None) -> tuple[JobRecord, bool]:
        """Validate and queue; route to the fallback model, or refuse, work that cannot start in time.

        ``max_wait`` is the call's deadline; the request's own ``max_wait`` counts too.
        """
        request = validate(draft, self._models, self._default_model)
        self._lifecycle.require_ready()
        limits = [w for w in (max_wait, draft.max_wait) if w is not None]
        if limits:
            limit = min(limits)
            wait = await self._queue.estimate_wait(request.model)
            if wait is not None and wait > limit:
                request = await self._fallback(draft, request, wait, limit)
        with self._tracing.submit(request.traceparent) as carried:
            record, created = await self._queue.submit(replace(request, traceparent=carried))
        if created and self.metrics is not None:
            self.metrics.submitted.labels(request.model, request.priority.name.lower()).inc()
        return record, created

    async def refresh_metrics(self) -> None:
        """Update the gauges that describe the queue (called every second while metrics are served)."""
        if self.metrics is None:
            return
        for model in self._models:
            for priority, count in (await self._queue.waiting(model)).items():
                self.metrics.queue_depth.labels(model, priority.name.lower()).set(count)
        self.metrics.dead_letters.set(len(await self._queue.dead_letters()))

    async def _fallback(
        self, draft: RequestDraft, request: JobRequest, wait: float, limit: float
    ) -> JobRequest:
        """The same request on the model's fallback, or ``ResourceExhausted``."""
        spec = self._models[request.model]
        too_late = ResourceExhausted(
            f"model {request.model} could start this job in about {wait:.1f}s, after its deadline or max_wait ({limit:.1f}s)"
            + ("" if draft.allow_fallback else "; set allow_fallback to run it on a faster model"),
            retry_after=max(1.0, wait - limit),
        )
        if not draft.allow_fallback or spec.fallback is None or spec.fallback not in self._models:
            raise too_late
        try:
            routed = validate(
                replace(draft, model=spec.fallback, seed=request.seed), self._models, self._default_model
            )
        except InvalidRequest as exc:
            raise ResourceExhausted(
                f"{too_late.message}; its fallback {spec.fallback} cannot take it ({exc.message})",
                retry_after=too_late.retry_after,
            ) from exc
        fallback_wait = await self._queue.estimate_wait(routed.model)
        if fallback_wait is not None and fallback_wait > limit:
            raise ResourceExhausted(
                f"{too_late.message}; its fallback {routed.model} is busy too",
                retry_after=too_late.retry_after,
            )
        return routed

    def watch(self, job_id: str, after_sequence: int = 0, *, model: str = "") -> AsyncIterator[JobEvent]:
        return self._queue.watch(_job_id(job_id), after_sequence, model=model)

    async def get(self, job_id: str) -> JobRecord:
        return await self._queue.get(_job_id(job_id))

    async def cancel(self, job_id: str) -> JobRecord:
        return await self._queue.cancel(_job_id(job_id))

    async def models(self) -> list[ModelStatus]:
        ordered = sorted(self._models.values(), key=lambda spec: spec.id != self._default_model)
        serving = self._lifecycle.serving
        return [
            ModelStatus(spec, serving and bool(await self._queue.live_workers(spec.id))) for spec in ordered
        ]

    async def dead_letters(self) -> list[DeadLetter]:
        return await self._queue.dead_letters()

    async def requeue(self, job_id: str) -> JobRecord:
        self._lifecycle.require_ready()
        return await self._queue.requeue(_job_id(job_id))
