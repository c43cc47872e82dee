"""Admission: whether, where and until when a request is accepted, before anything is queued.

Validates the draft (``validation.validate``), checks what the caller's tenant may use, refuses
work while the server cannot take it (not ready, no live worker for the model, a webhook it
cannot sign), and routes to the model's fallback, or refuses, work that would start too late.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from moviola import segments
from moviola.adapters import AdapterCatalog
from moviola.aliases import Aliases
from moviola.auth.caller import Caller
from moviola.catalog import ModelSpec
from moviola.errors import (
    FailedPrecondition,
    InvalidRequest,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from moviola.jobs import JobRequest
from moviola.lifecycle import Lifecycle
from moviola.scheduler.base import FrontQueue
from moviola.validation import RequestDraft, validate
from moviola.webhooks.policy import WebhookPolicy
from moviola.webhooks.signing import Signer

#: Seconds a caller is told to wait before retrying when no worker serves a model.
NO_WORKER_RETRY = 5.0
#: Seconds a model found served is taken as still served without asking the queue again. A worker is
#: live for 15 s after its last heartbeat (``Tuning.live_window``): a second more changes little, and
#: saves a Redis round trip on every submit. A model found unserved is asked about every time.
SERVED_FOR = 1.0


def may_use(caller: Caller, model: str) -> None:
    if not caller.may_use(model):
        raise PermissionDenied(f"tenant {caller.tenant} may not use model {model}")


def _may_apply(caller: Caller, request: JobRequest) -> None:
    for i, lora in enumerate(request.loras):
        if not caller.may_apply(lora.name):
            raise PermissionDenied(f"loras[{i}].name: tenant {caller.tenant} may not use adapter {lora.name}")


def _seconds(value: float) -> str:
    """Seconds as the caller wrote them: 2 → "2s", 0.25 → "0.25s", 3.7123 → "3.71s"."""
    return f"{round(value, 2):g}s"


class Admission:
    def __init__(
        self,
        queue: FrontQueue,
        models: dict[str, ModelSpec],
        default_model: str,
        lifecycle: Lifecycle,
        adapters: AdapterCatalog,
        *,
        accept_without_workers: bool = False,
        webhooks: WebhookPolicy | None = None,
        signer: Signer | None = None,
        aliases: Aliases | None = None,
        strict_sizes: bool = False,
    ) -> None:
        self._queue = queue
        self._models = models
        self._default_model = default_model
        self._lifecycle = lifecycle
        self._adapters = adapters
        self._accept_without_workers = accept_without_workers
        #: Model → when it was last found served (``time.monotonic``).
        self._served_at: dict[str, float] = {}
        #: More names of the served models (``sora-2``), and whether Sora's sizes are refused, not mapped.
        self.aliases = aliases or Aliases()
        self._strict_sizes = strict_sizes
        #: Where webhooks may go, and who has a secret to sign them; None: this server sends none.
        self._webhooks = webhooks
        self._signer = signer

    async def admit(self, draft: RequestDraft, caller: Caller, caller_waits: float | None) -> JobRequest:
        """The request to queue: validated, the caller's, on a served model, with its start deadline.

        ``caller_waits``: seconds the caller waits for the job (Generate's stream deadline); with the
        request's own ``max_wait``, the sooner bounds the start.
        """
        # An image is decoded in full (Pillow, up to a second for 50 megapixels): off the event loop.
        tenant = caller.tenant
        request = (
            await asyncio.to_thread(self._validate, draft, tenant)
            if draft.image
            else self._validate(draft, tenant)
        )
        may_use(caller, request.model)
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
        may_use(caller, request.model)  # a fallback the tenant may not use is not taken
        limits = [w for w in (caller_waits, draft.max_wait) if w is not None]
        if limits:
            limit = min(limits)
            wait = await self._queue.estimate_wait(request)
            if wait is not None and wait > limit:
                request = await self._fallback(draft, request, wait, limit)
            request = replace(request, start_by=time.time() + limit)
        return request

    def _validate(self, draft: RequestDraft, tenant: str) -> JobRequest:
        return validate(
            draft,
            self._models,
            self._default_model,
            self._adapters,
            aliases=self.aliases,
            strict_sizes=self._strict_sizes,
            tenant=tenant,
        )

    async def serves(self, model: str) -> bool:
        """Whether jobs of ``model`` can run here now: it is offered and a live worker serves it."""
        if model not in self._models:
            return False
        if (
            self._accept_without_workers
            or time.monotonic() - self._served_at.get(model, -SERVED_FOR) < SERVED_FOR
        ):
            return True
        if not await self._queue.live_workers(model):
            return False
        self._served_at[model] = time.monotonic()
        return True

    async def _served(self, draft: RequestDraft, request: JobRequest) -> JobRequest:
        """The request, if a live worker serves its model (or the fallback's); else ``Unavailable``."""
        if await self.serves(request.model):
            await self._partner_served(request)
            return request
        fallback = self._models[request.model].fallback
        if draft.allow_fallback and fallback is not None and await self.serves(fallback):
            return self._on(draft, request, fallback)
        raise Unavailable(
            f"no worker serves model {request.model} now; start one (moviola worker --model "
            f"{request.model}) or retry later",
            retry_after=NO_WORKER_RETRY,
        )

    async def _partner_served(self, request: JobRequest) -> None:
        """``Unavailable`` when a long video's frames past the first window go to a partner model
        (``segments.continuer``) that no live worker serves."""
        spec = self._models[request.model]
        if segments.handed_on(
            spec, request.num_frames, bool(request.continue_from)
        ) and not await self.serves(spec.continue_with):
            raise Unavailable(
                f"no worker serves model {spec.continue_with}, which makes {spec.id}'s frames past one "
                f"window; start one (moviola worker --model {spec.continue_with}) or retry later",
                retry_after=NO_WORKER_RETRY,
            )

    def _on(self, draft: RequestDraft, request: JobRequest, model: str) -> JobRequest:
        """The same request on another model (same seed); ``InvalidRequest`` when it does not fit it."""
        routed = self._validate(replace(draft, model=model, seed=request.seed), request.tenant)
        return replace(routed, requested_model=request.requested_model)  # the name the caller knows

    async def _fallback(
        self, draft: RequestDraft, request: JobRequest, wait: float, limit: float
    ) -> JobRequest:
        """The same request on the model's fallback, or ``ResourceExhausted``."""
        spec = self._models[request.model]
        served = spec.fallback is not None and await self.serves(spec.fallback)
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
