"""The job service: what the API does, without gRPC.

Validates before anything is queued, refuses work while the server cannot
take it (not ready, no worker for the model, or it would start too late), and
hands everything else to the job queue. The embedded server and every
gateway run one.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from moviola.adapters import AdapterCatalog, AdapterSpec
from moviola.auth.caller import ANONYMOUS, Caller
from moviola.catalog import ModelSpec
from moviola.errors import (
    FailedPrecondition,
    InvalidRequest,
    JobNotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from moviola.jobs import JobEvent, JobRecord, JobRequest, JobState
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.scheduler.base import DeadLetter, FrontQueue
from moviola.tracing import Tracing
from moviola.validation import MAX_JOB_ID_CHARS, RequestDraft, check_length, validate
from moviola.webhooks.policy import WebhookPolicy
from moviola.webhooks.signing import Signer


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    ready: bool
    #: The adapters of the model that the caller may name.
    adapters: tuple[AdapterSpec, ...] = ()


def _job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidRequest("job_id", "must not be empty")
    check_length("job_id", job_id, MAX_JOB_ID_CHARS)
    return job_id


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: Most jobs an oldest-first listing reads.
MAX_LISTED = 10_000


def _token(record: JobRecord) -> str:
    """Where the next page starts: after this job (its creation time and id), opaque to callers."""
    return base64.urlsafe_b64encode(f"{record.created_at!r}:{record.id}".encode()).decode()


def _cursor(token: str) -> tuple[float, str]:
    try:
        created, _, job_id = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        cursor = (float(created), job_id)
    except (ValueError, UnicodeError) as exc:
        raise InvalidRequest("page_token", "is not a token ListJobs returned") from exc
    if not job_id or not math.isfinite(cursor[0]):
        raise InvalidRequest("page_token", "is not a token ListJobs returned")
    return cursor


def _may_use(caller: Caller, model: str) -> None:
    if not caller.may_use(model):
        raise PermissionDenied(f"tenant {caller.tenant} may not use model {model}")


def _may_apply(caller: Caller, request: JobRequest) -> None:
    for i, lora in enumerate(request.loras):
        if not caller.may_apply(lora.name):
            raise PermissionDenied(f"loras[{i}].name: tenant {caller.tenant} may not use adapter {lora.name}")


def _admin(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise PermissionDenied(f"only admin keys may {what}")


#: Seconds a caller is told to wait before retrying when no worker serves a model.
NO_WORKER_RETRY = 5.0


def _seconds(value: float) -> str:
    """Seconds as the caller wrote them: 2 → "2s", 0.25 → "0.25s", 3.7123 → "3.71s"."""
    return f"{round(value, 2):g}s"


class JobService:
    def __init__(
        self,
        queue: FrontQueue,
        models: dict[str, ModelSpec],
        default_model: str,
        lifecycle: Lifecycle,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        *,
        accept_without_workers: bool = False,
        webhooks: WebhookPolicy | None = None,
        signer: Signer | None = None,
        adapters: AdapterCatalog | None = None,
    ) -> None:
        #: The LoRA adapters requests may name (``moviola.adapters``).
        self.adapters = adapters or AdapterCatalog()
        self.metrics = metrics
        self._tracing = tracing or Tracing(None, "moviola")
        self._queue = queue
        self._models = models
        self._default_model = default_model
        self._lifecycle = lifecycle
        self._accept_without_workers = accept_without_workers
        #: Where webhooks may go, and who has a secret to sign them; None: this server sends none.
        self._webhooks = webhooks
        self._signer = signer

    async def submit(
        self, draft: RequestDraft, *, caller_waits: float | None = None, caller: Caller = ANONYMOUS
    ) -> tuple[JobRecord, bool]:
        """Validate and queue; route to the fallback model, or refuse, work that cannot start in time.

        ``caller_waits``: seconds the caller waits for the job (Generate's stream deadline); with the
        request's own ``max_wait``, the sooner bounds the start. A queued job that has not started by
        then fails (``FailureCode.DEADLINE_EXCEEDED``). SubmitJob passes nothing: its call returns at once.
        """
        request = replace(
            validate(draft, self._models, self._default_model, self.adapters), tenant=caller.tenant
        )
        _may_use(caller, request.model)
        _may_apply(caller, request)
        if request.webhook_url:
            if self._webhooks is None or self._signer is None or not self._signer.signs_for(caller.tenant):
                raise FailedPrecondition(
                    "webhook_url: this server has no secret to sign webhooks with "
                    "(--webhook-secret, or the tenant's webhook_secrets in the auth file)"
                )
            await self._webhooks.check(request.webhook_url)
        self._lifecycle.require_ready()
        request = await self._served(draft, request)
        _may_use(caller, request.model)  # a fallback the tenant may not use is not taken
        limits = [w for w in (caller_waits, draft.max_wait) if w is not None]
        if limits:
            limit = min(limits)
            wait = await self._queue.estimate_wait(request)
            if wait is not None and wait > limit:
                request = await self._fallback(draft, request, wait, limit)
            request = replace(request, start_by=time.time() + limit)
        with self._tracing.submit(request.traceparent) as carried:
            record, created = await self._queue.submit(replace(request, traceparent=carried), caller.limits)
        if created and self.metrics is not None:
            self.metrics.submitted.labels(request.model, request.priority.name.lower()).inc()
        return record, created

    async def _served(self, draft: RequestDraft, request: JobRequest) -> JobRequest:
        """The request, if a live worker serves its model (or the fallback's); else ``Unavailable``."""
        if await self._serves(request.model):
            return request
        fallback = self._models[request.model].fallback
        if draft.allow_fallback and fallback is not None and await self._serves(fallback):
            return self._on(draft, request, fallback)
        raise Unavailable(
            f"no worker serves model {request.model} now; start one (moviola worker --model "
            f"{request.model}) or retry later",
            retry_after=NO_WORKER_RETRY,
        )

    async def _serves(self, model: str) -> bool:
        """Whether jobs of ``model`` can run here now: it is offered and a live worker serves it."""
        return model in self._models and (
            self._accept_without_workers or bool(await self._queue.live_workers(model))
        )

    def _on(self, draft: RequestDraft, request: JobRequest, model: str) -> JobRequest:
        """The same request on another model (same seed); ``InvalidRequest`` when it does not fit it."""
        return validate(
            replace(draft, model=model, seed=request.seed), self._models, self._default_model, self.adapters
        )

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
        served = spec.fallback is not None and await self._serves(spec.fallback)
        hint = (
            "; set allow_fallback to run it on a faster model" if served and not draft.allow_fallback else ""
        )
        too_late = ResourceExhausted(
            f"model {request.model} could start this job in about {_seconds(wait)}, after its deadline or "
            f"max_wait ({_seconds(limit)}){hint}",
            retry_after=max(1.0, wait - limit),
        )
        if not draft.allow_fallback or not served or spec.fallback is None:
            raise too_late
        try:
            routed = self._on(draft, request, spec.fallback)
        except InvalidRequest as exc:
            raise ResourceExhausted(
                f"{too_late.message}; its fallback {spec.fallback} cannot take it ({exc.message})",
                retry_after=too_late.retry_after,
            ) from exc
        fallback_wait = await self._queue.estimate_wait(routed)
        if fallback_wait is not None and fallback_wait > limit:
            raise ResourceExhausted(
                f"{too_late.message}; its fallback {routed.model} is busy too",
                retry_after=too_late.retry_after,
            )
        return routed

    async def watch(
        self, job_id: str, after_sequence: int = 0, *, model: str = "", caller: Caller = ANONYMOUS
    ) -> AsyncIterator[JobEvent]:
        if not model:  # Generate's own job needs no check; anyone else's is looked up first
            await self.get(job_id, caller)
        async for event in self._queue.watch(_job_id(job_id), after_sequence, model=model):
            yield event

    async def get(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        """The job, if ``caller``'s tenant submitted it; another tenant's job is ``JobNotFound``, as if absent."""
        record = await self._queue.get(_job_id(job_id))
        if record.request.tenant != caller.tenant:
            raise JobNotFound(job_id)
        return record

    async def list_jobs(
        self,
        caller: Caller = ANONYMOUS,
        *,
        page_size: int = 0,
        page_token: str = "",
        state: JobState | None = None,
    ) -> tuple[list[JobRecord], str]:
        """A page of the caller's jobs, newest first, and the token of the next page ("" after the last)."""
        if page_size > MAX_PAGE_SIZE:
            raise InvalidRequest("page_size", f"must be at most {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        before = _cursor(page_token) if page_token else None
        records = await self._queue.list_jobs(caller.tenant, before=before, limit=size + 1, state=state)
        page = records[:size]
        more = len(records) > size
        return page, (_token(page[-1]) if more and page else "")

    async def list_after(
        self, caller: Caller, *, after: str = "", limit: int = 20, newest_first: bool = True
    ) -> tuple[list[JobRecord], bool]:
        """The REST face's pages: up to ``limit`` of the caller's jobs after the job ``after``; and whether more follow.

        Oldest first reads the caller's jobs within the retention (at most ``MAX_LISTED``) and turns them around.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        anchor = await self.get(after, caller) if after else None
        if newest_first:
            before = (anchor.created_at, anchor.id) if anchor is not None else None
            records = await self._queue.list_jobs(caller.tenant, before=before, limit=limit + 1, state=None)
            return records[:limit], len(records) > limit
        records = await self._queue.list_jobs(caller.tenant, before=None, limit=MAX_LISTED, state=None)
        records.reverse()
        if anchor is not None:
            records = [r for r in records if (r.created_at, r.id) > (anchor.created_at, anchor.id)]
        return records[:limit], len(records) > limit

    async def delete(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        """Forget a finished job (its files are the delivery's to delete); ``FailedPrecondition`` while it runs."""
        record = await self.get(job_id, caller)
        if not record.state.terminal:
            raise FailedPrecondition(f"job {job_id} is {record.state.value}: cancel it first, then delete it")
        await self._queue.forget(job_id, caller.tenant)
        return record

    async def cancel(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        await self.get(job_id, caller)
        return await self._queue.cancel(_job_id(job_id))

    async def models(self, caller: Caller = ANONYMOUS) -> list[ModelStatus]:
        """The models served, the default first, each with the adapters ``caller`` may name."""
        ordered = sorted(self._models.values(), key=lambda spec: spec.id != self._default_model)
        serving = self._lifecycle.serving
        return [
            ModelStatus(
                spec,
                serving and bool(await self._queue.live_workers(spec.id)),
                tuple(a for a in self.adapters.for_model(spec) if caller.may_apply(a.name)),
            )
            for spec in ordered
        ]

    async def dead_letters(self, caller: Caller = ANONYMOUS) -> list[DeadLetter]:
        _admin(caller, "list dead letters")
        return await self._queue.dead_letters()

    async def requeue(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        _admin(caller, "requeue jobs")
        self._lifecycle.require_ready()
        return await self._queue.requeue(_job_id(job_id))
