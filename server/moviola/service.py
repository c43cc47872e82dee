"""The job service: what callers can do with jobs, whatever face they call through.

Submit (through ``Admission``), get (with fresh download links), list (newest or oldest first,
paged by the store), watch, cancel, delete (with the job's files), remix, extend, edit, download,
and the admin calls (dead letters, requeue). The gRPC servicers and the REST routes each turn their wire format
into one call here and the result back; nothing here knows either. The embedded server and every
gateway run one.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from moviola.adapters import AdapterCatalog, AdapterSpec
from moviola.admission import Admission
from moviola.auth.caller import ANONYMOUS, Caller
from moviola.catalog import ModelSpec
from moviola.characters import Characters
from moviola.delivery import Delivery, FileDownload, Links
from moviola.derived import Derive, draft_of
from moviola.errors import (
    FailedPrecondition,
    InvalidRequest,
    JobNotFound,
    PermissionDenied,
    ResourceExhausted,
)
from moviola.jobs import Completed, JobEvent, JobRecord, JobRequest, JobState
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.quota import Limits
from moviola.recent import Recent
from moviola.scheduler.base import DeadLetter, FrontQueue
from moviola.storage.base import Variant
from moviola.tracing import Tracing
from moviola.validation import MAX_JOB_ID_CHARS, RequestDraft, check_length

#: What a queue's submit answers: the job, whether it is new, and (``submit_watched``) its events.
Queued = TypeVar("Queued", bound=tuple[Any, ...])

#: Seconds after which a stream refused for ``--max-streams`` may be asked for again.
STREAM_RETRY = 1.0
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    ready: bool
    #: The adapters of the model that the caller may name.
    adapters: tuple[AdapterSpec, ...] = ()
    #: More names requests may give it (``sora-2``).
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobView:
    """A job as callers see it: its record, and fresh links to its files once it completed."""

    record: JobRecord
    links: Links | None = None


@dataclass(frozen=True)
class EventView:
    """An event as callers see it: a completed one with fresh links to the video."""

    event: JobEvent
    links: Links | None = None


def _job_id(job_id: str) -> str:
    if not job_id:
        raise InvalidRequest("job_id", "must not be empty")
    check_length("job_id", job_id, MAX_JOB_ID_CHARS)
    return job_id


async def owned(queue: FrontQueue, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
    """The job, if ``caller``'s tenant submitted it; another tenant's job is ``JobNotFound``, as if absent."""
    record = await queue.get(_job_id(job_id))
    if record.request.tenant != caller.tenant:
        raise JobNotFound(job_id)
    return record


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


def _admin(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise PermissionDenied(f"only admin keys may {what}")


class JobService:
    def __init__(
        self,
        queue: FrontQueue,
        admission: Admission,
        delivery: Delivery,
        models: dict[str, ModelSpec],
        default_model: str,
        lifecycle: Lifecycle,
        *,
        adapters: AdapterCatalog | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        characters: Characters | None = None,
        max_streams: int = 20_000,
    ) -> None:
        #: Each event's view, made once for all the streams that send it.
        self._event_views = Recent(self._event_view)
        #: Event streams (Generate, WatchJob, SSE) open now, and the most this front takes.
        self._open_streams, self._max_streams = 0, max_streams
        #: The tenants' characters (reference images), kept in the delivery's storage.
        self.characters = characters or Characters(delivery.storage)
        #: The LoRA adapters requests may name (``moviola.adapters``).
        self.adapters = adapters or AdapterCatalog()
        self.metrics = metrics
        self._tracing = tracing or Tracing(None, "moviola")
        self._queue = queue
        self._admission = admission
        self._delivery = delivery
        #: Where extensions and edits start: a completed job's video, or an upload.
        self._derive = Derive(models, default_model, admission.aliases, delivery)
        self._models = models
        self._default_model = default_model
        self._lifecycle = lifecycle

    def _view(self, record: JobRecord) -> JobView:
        return JobView(record, self._delivery.links_of(record))

    async def submit(
        self, draft: RequestDraft, *, caller_waits: float | None = None, caller: Caller = ANONYMOUS
    ) -> tuple[JobView, bool]:
        """Admit and queue; the job, and whether it is new (False: the idempotency key's earlier job).

        ``caller_waits``: seconds the caller waits for the job (Generate's stream deadline): a queued job
        that has not started by then fails (``FailureCode.DEADLINE_EXCEEDED``). SubmitJob passes nothing.
        """
        record, created = await self._queued(draft, caller, caller_waits, self._queue.submit)
        return self._view(record), created

    async def _queued(
        self,
        draft: RequestDraft,
        caller: Caller,
        caller_waits: float | None,
        queue: Callable[[JobRequest, Limits], Awaitable[Queued]],
    ) -> Queued:
        """Admit the draft and hand it to ``queue`` (``submit`` or ``submit_watched``: its reply's second
        item says whether the job is new), traced and counted."""
        request = await self._admission.admit(await self._with_character(draft, caller), caller, caller_waits)
        with self._tracing.submit(request.traceparent) as carried:
            if carried != request.traceparent:  # a span of ours (no copy without tracing)
                request = replace(request, traceparent=carried)
            queued = await queue(request, caller.limits)
        if queued[1] and self.metrics is not None:
            self.metrics.submitted.labels(request.model, request.priority.name.lower()).inc()
        return queued

    async def _with_character(self, draft: RequestDraft, caller: Caller) -> RequestDraft:
        """The draft with its character's reference image as the image to condition on."""
        if not draft.character_id:
            return draft
        if draft.image:
            raise InvalidRequest("character_id", "give a character or an image to condition on, not both")
        check_length("character_id", draft.character_id, MAX_JOB_ID_CHARS)
        return replace(draft, image=await self.characters.image(draft.character_id, caller))

    async def remix(
        self, job_id: str, prompt: str, *, idempotency_key: str = "", caller: Caller = ANONYMOUS
    ) -> tuple[JobView, bool]:
        """The same request as the caller's job ``job_id`` with a new prompt (and a new job)."""
        original = (await self.get(job_id, caller)).request
        draft = replace(
            draft_of(original), prompt=prompt, remixed_from=job_id, idempotency_key=idempotency_key
        )
        return await self.submit(draft, caller=caller)

    async def extend(
        self, job_id: str, prompt: str, seconds: str, *, idempotency_key: str = "", caller: Caller = ANONYMOUS
    ) -> tuple[JobView, bool]:
        """A new video: the caller's completed video ``job_id``, then ``seconds`` more made from ``prompt``
        (``segments.py``), on the same model, size and fps."""
        source = await self.get(job_id, caller)
        return await self.submit(
            self._derive.extension(source, prompt, seconds, idempotency_key), caller=caller
        )

    async def extend_upload(
        self,
        video: bytes,
        prompt: str,
        seconds: str,
        *,
        model: str = "",
        idempotency_key: str = "",
        caller: Caller = ANONYMOUS,
    ) -> tuple[JobView, bool]:
        """A new video: the last window of an uploaded one (at ``model``'s nearest size and its fps), then
        ``seconds`` more made from ``prompt``. The upload is decoded and stored before anything is queued."""
        draft = await self._derive.extension_upload(video, prompt, seconds, model, idempotency_key)
        return await self.submit(draft, caller=caller)

    async def edit(
        self,
        job_id: str,
        prompt: str,
        strength: float | None = None,
        *,
        idempotency_key: str = "",
        caller: Caller = ANONYMOUS,
    ) -> tuple[JobView, bool]:
        """A new video: the caller's completed video ``job_id`` made again from ``prompt`` (video-to-video,
        ``strength`` of the way from it; None: the default), on its model, at its size, fps and frame count."""
        source = await self.get(job_id, caller)
        return await self.submit(self._derive.edit(source, prompt, strength, idempotency_key), caller=caller)

    async def edit_upload(
        self,
        video: bytes,
        prompt: str,
        strength: float | None = None,
        *,
        model: str = "",
        idempotency_key: str = "",
        caller: Caller = ANONYMOUS,
    ) -> tuple[JobView, bool]:
        """A new video: an uploaded one (its first window, at ``model``'s nearest size and its fps) made again
        from ``prompt``. The upload is decoded and stored before anything is queued."""
        draft = await self._derive.edit_upload(video, prompt, strength, model, idempotency_key)
        return await self.submit(draft, caller=caller)

    async def generate(
        self, draft: RequestDraft, *, caller_waits: float | None = None, caller: Caller = ANONYMOUS
    ) -> AsyncIterator[EventView]:
        """Submit and follow the new job to its end (gRPC's Generate): the stream is taken before the job
        is queued, so that a refused stream (``--max-streams``) leaves no job behind."""
        with self._stream():
            _, _, events = await self._queued(draft, caller, caller_waits, self._queue.submit_watched)
            async for event in events:
                yield self._event_views(event)

    async def watch(
        self, job_id: str, after_sequence: int = 0, *, caller: Caller = ANONYMOUS
    ) -> AsyncIterator[EventView]:
        """The caller's job's events after ``after_sequence``, then live ones, a completed one with its links.

        Raises ``ResourceExhausted`` when this front has ``--max-streams`` open already."""
        with self._stream():
            record = await self.get(job_id, caller)
            async for view in self._events(record.id, after_sequence, record.model):
                yield view

    async def _events(self, job_id: str, after_sequence: int, model: str) -> AsyncIterator[EventView]:
        async for event in self._queue.watch(job_id, after_sequence, model=model):
            yield self._event_views(event)

    def _event_view(self, event: JobEvent) -> EventView:
        kind = event.kind
        return EventView(
            event, self._delivery.links(kind, event.time) if isinstance(kind, Completed) else None
        )

    @contextlib.contextmanager
    def _stream(self) -> Iterator[None]:
        """One open event stream of this front's ``max_streams``; ``ResourceExhausted`` past them."""
        if self._open_streams >= self._max_streams:
            if self.metrics is not None:
                self.metrics.streams_refused.inc()
            raise ResourceExhausted(
                f"this server has {self._open_streams} event streams open, its most (--max-streams); "
                "retry shortly, or through another gateway",
                retry_after=STREAM_RETRY,
            )
        self._open_streams += 1
        try:
            yield
        finally:
            self._open_streams -= 1

    async def get(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        """The job, if ``caller``'s tenant submitted it; another tenant's job is ``JobNotFound``, as if absent."""
        return await owned(self._queue, job_id, caller)

    async def show(self, job_id: str, caller: Caller = ANONYMOUS) -> JobView:
        """The caller's job with fresh links to its files."""
        return self._view(await self.get(job_id, caller))

    async def list_jobs(
        self,
        caller: Caller = ANONYMOUS,
        *,
        page_size: int = 0,
        page_token: str = "",
        state: JobState | None = None,
    ) -> tuple[list[JobView], str]:
        """A page of the caller's jobs, newest first, and the token of the next page ("" after the last)."""
        if page_size > MAX_PAGE_SIZE:
            raise InvalidRequest("page_size", f"must be at most {MAX_PAGE_SIZE}")
        size = page_size or DEFAULT_PAGE_SIZE
        after = _cursor(page_token) if page_token else None
        records = await self._queue.list_jobs(caller.tenant, after=after, limit=size + 1, state=state)
        page = records[:size]
        more = len(records) > size
        return [self._view(r) for r in page], (_token(page[-1]) if more and page else "")

    async def list_after(
        self, caller: Caller, *, after: str = "", limit: int = DEFAULT_PAGE_SIZE, newest_first: bool = True
    ) -> tuple[list[JobView], bool]:
        """Up to ``limit`` of the caller's jobs after the job ``after`` in either order; and whether more follow."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequest("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        anchor = await self.get(after, caller) if after else None
        records = await self._queue.list_jobs(
            caller.tenant,
            after=(anchor.created_at, anchor.id) if anchor is not None else None,
            limit=limit + 1,
            state=None,
            oldest_first=not newest_first,
        )
        return [self._view(r) for r in records[:limit]], len(records) > limit

    async def delete(self, job_id: str, caller: Caller = ANONYMOUS) -> JobRecord:
        """Forget a finished job and delete its files; ``FailedPrecondition`` while it runs."""
        record = await self.get(job_id, caller)
        if not record.state.terminal:
            raise FailedPrecondition(f"job {job_id} is {record.state.value}: cancel it first, then delete it")
        await self._queue.forget(job_id, caller.tenant)
        await self._delivery.delete_files(record)
        return record

    async def cancel(self, job_id: str, caller: Caller = ANONYMOUS) -> JobView:
        await self.get(job_id, caller)
        return self._view(await self._queue.cancel(_job_id(job_id)))

    async def download(self, job_id: str, variant: Variant, caller: Caller = ANONYMOUS) -> FileDownload:
        """The caller's completed video (or its poster, or its spritesheet) in chunks."""
        return await self._delivery.download(await self.get(job_id, caller), variant)

    async def models(self, caller: Caller = ANONYMOUS) -> list[ModelStatus]:
        """The models served, the default first, each with the adapters ``caller`` may name."""
        ordered = sorted(self._models.values(), key=lambda spec: spec.id != self._default_model)
        serving = self._lifecycle.serving
        return [
            ModelStatus(
                spec,
                serving and bool(await self._queue.live_workers(spec.id)),
                tuple(a for a in self.adapters.for_model(spec) if caller.may_apply(a.name)),
                self._admission.aliases.of_model(spec.id),
            )
            for spec in ordered
        ]

    async def dead_letters(self, caller: Caller = ANONYMOUS) -> list[DeadLetter]:
        _admin(caller, "list dead letters")
        return await self._queue.dead_letters()

    async def requeue(self, job_id: str, caller: Caller = ANONYMOUS) -> JobView:
        _admin(caller, "requeue jobs")
        self._lifecycle.require_ready()
        return self._view(await self._queue.requeue(_job_id(job_id)))

    async def refresh_metrics(self) -> None:
        """Update the gauges that describe the queue (called every second while metrics are served)."""
        if self.metrics is None:
            return
        for model in self._models:
            for priority, count in (await self._queue.waiting(model)).items():
                self.metrics.queue_depth.labels(model, priority.name.lower()).set(count)
        self.metrics.dead_letters.set(len(await self._queue.dead_letters()))
