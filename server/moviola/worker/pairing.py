"""A long video on a model that hands its continuation to a partner (the catalogue's ``continue_with``).

Wan2.2-T2V-A14B makes a window from a prompt but cannot continue a video; Wan2.2-I2V-A14B can. A
worker of the first makes the first window, stores it, and submits the rest as a *part*: an
extension of that window on the partner, in the partner's queue, under the tenant ``PARTS`` (so no
caller lists it), without webhooks or adapters (those are the first model's). It relays the part's
phases and steps as its own job's (segments counted on from the first window's), cancels the part
when its job is cancelled, and takes the part's video, which begins with the first window, as its
job's. A part that fails fails the job with its reason. The part is forgotten and its files deleted
whatever happens. A worker lost meanwhile: the job runs again and finds its part by idempotency key
(one part per job, never two videos).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace

from moviola import segments, tuning
from moviola.catalog import ModelSpec
from moviola.errors import InvalidInput, JobCancelled, JobError, NotFound
from moviola.frames import Frames
from moviola.jobs import (
    Cancelled,
    Completed,
    EventKind,
    Failed,
    FailureCode,
    JobRequest,
    PhaseChanged,
    Progress,
)
from moviola.mp4 import decode_mp4, encode_mp4, encode_poster
from moviola.pipelines.base import VideoPipeline
from moviola.scheduler.base import GatewayQueue
from moviola.storage.base import Storage, Variant
from moviola.worker.hooks import JobHooks

log = logging.getLogger(__name__)

#: The tenant parts are submitted as: no caller's key maps to it, so no caller lists or watches them.
PARTS = "moviola:parts"


class Partners:
    """The partners this worker's model hands continuations to, and the queue and storage to reach them."""

    def __init__(self, queue: GatewayQueue, storage: Storage, models: dict[str, ModelSpec]) -> None:
        self._queue, self._storage, self._models = queue, storage, models

    def partner(self, spec: ModelSpec, request: JobRequest) -> ModelSpec | None:
        """The model that makes ``request``'s frames past ``spec``'s first window; None: ``spec`` makes
        them all (one window, or it continues its own videos)."""
        if not segments.handed_on(spec, request.num_frames, bool(request.continue_from)):
            return None
        partner = segments.continuer(spec, self._models)
        if partner is None:
            raise InvalidInput(f"model {spec.id} makes one window: {segments.one_window(spec)}")
        return partner

    async def render(
        self,
        pipeline: VideoPipeline,
        executor: Executor,
        job_id: str,
        request: JobRequest,
        hooks: JobHooks,
        partner: ModelSpec,
        leaving: Callable[[], bool],
    ) -> tuple[Frames, int]:
        """The request's frames: the first window here (on ``executor``, the pipeline thread), the rest
        on ``partner`` (``rest``); and how many segments made them."""
        spec = pipeline.spec
        window = spec.limits.max_frames
        total = 1 + len(segments.plan(request.num_frames, partner, made=window))

        def first() -> Frames:
            hooks.segment_started(1, total)
            return pipeline.generate(replace(request, num_frames=window), hooks)

        made = await asyncio.get_running_loop().run_in_executor(executor, first)
        frames, part = await self.rest(job_id, request, made, partner, hooks, leaving)
        hooks.transformer_passes += part.transformer_passes
        hooks.cached_steps += part.cached_steps
        return frames, total

    async def rest(
        self,
        job_id: str,
        request: JobRequest,
        first: Frames,
        partner: ModelSpec,
        hooks: JobHooks,
        leaving: Callable[[], bool],
    ) -> tuple[Frames, Completed]:
        """The whole video (``first`` and what the partner made after it), and the part's result.

        A cancel of the job (``hooks``) cancels the part too, unless the worker is ``leaving`` (stopping):
        then the part goes on, and the job's next run takes it up.
        Raises ``JobCancelled`` (cancelled, or left) or ``JobError`` (the part failed).
        """
        stored = await asyncio.to_thread(self._store, f"part-{job_id}", first, request.fps)
        record, new = await self._queue.submit(self._part(job_id, request, first, stored, partner))
        if not new:  # an earlier run of this job submitted it: its own first window is the one used
            await asyncio.to_thread(self._delete, stored)
        log.info("job %s: frames past the first window on %s (part %s)", job_id, partner.id, record.id)
        follow = asyncio.create_task(self._follow(record.id, partner.id, hooks.relay))
        left = asyncio.create_task(self._until_left(hooks, leaving, record.id))
        try:
            await asyncio.wait({follow, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (follow, left):
                task.cancel()
        if not follow.done() or follow.cancelled():  # the worker is stopping: the part goes on
            raise JobCancelled("the worker is stopping; the job runs again and takes up its part")
        try:
            result = follow.result()
            return await asyncio.to_thread(self._frames, result.video_uri), result
        finally:
            await self._clean(record.id, stored)

    async def _until_left(self, hooks: JobHooks, leaving: Callable[[], bool], part_id: str) -> None:
        """Return when the worker leaves the job; cancel the part when the job is cancelled (and wait
        for the part to end, which ends ``_follow``)."""
        cancelled = asyncio.Event()
        hooks.when_cancelled(cancelled.set)
        await cancelled.wait()
        if leaving():
            return
        with contextlib.suppress(Exception):
            await self._queue.cancel(part_id)
        await asyncio.Event().wait()

    def _part(
        self, job_id: str, request: JobRequest, first: Frames, stored: str, partner: ModelSpec
    ) -> JobRequest:
        """An extension of the first window on ``partner``: the partner's guidance and profile."""
        has = {"exact": True, "fast": partner.fast_threshold > 0, "turbo": partner.turbo is not None}
        profile = request.speed_profile if has.get(request.speed_profile) else "exact"
        steps, guidance, guidance_2 = (
            tuning.turbo(partner, 0, None, None)
            if profile == "turbo"
            else (
                request.num_inference_steps,
                partner.defaults.guidance_scale,
                partner.defaults.guidance_scale_2,
            )
        )
        return replace(
            request,
            model=partner.id,
            requested_model="",
            image=None,
            seed=(request.seed + 1) % 2**32,
            tenant=PARTS,
            idempotency_key=f"part-of/{job_id}",
            start_by=None,
            extended_from=job_id,
            continue_from=stored,
            continued_frames=len(first),
            webhook_url="",
            webhook_events=(),
            speed_profile=profile,
            num_inference_steps=steps,
            guidance_scale=guidance or 0.0,
            guidance_scale_2=guidance_2,
            loras=(),
        )

    async def _follow(self, part_id: str, model: str, relay: Callable[[EventKind], None]) -> Completed:
        """Relay the part's phases and steps until it ends; its result."""
        async for event in self._queue.watch(part_id, model=model):
            kind = event.kind
            if isinstance(kind, Progress):
                relay(replace(kind, segment=kind.segment + 1, total_segments=kind.total_segments + 1))
            elif isinstance(kind, PhaseChanged):
                relay(kind)
            elif isinstance(kind, Completed):
                return kind
            elif isinstance(kind, Cancelled):
                raise JobCancelled(kind.reason)
            elif isinstance(kind, Failed):
                if kind.code is FailureCode.INVALID_INPUT:
                    raise InvalidInput(kind.message)
                raise _failed(f"continuing on {model} failed: {kind.message}", kind.retryable)
        raise _failed(f"continuing on {model}: the part's events ended without a result", True)

    async def _clean(self, part_id: str, stored: str) -> None:
        """Forget the ended part and delete its files and the stored first window (best effort:
        retention sweeps what is left)."""
        with contextlib.suppress(Exception):
            record = await self._queue.get(part_id)
            uris = [stored] + ([record.result.video_uri] if record.result else [])
            await self._queue.forget(part_id, PARTS)
            for uri in uris:
                await asyncio.to_thread(self._delete, uri)

    def _store(self, key: str, frames: Frames, fps: int) -> str:
        return self._storage.put(key, encode_mp4(frames, fps), encode_poster(frames)).uri

    def _frames(self, uri: str) -> Frames:
        try:
            return decode_mp4(b"".join(self._storage.open(uri, Variant.VIDEO).chunks))
        except NotFound as exc:
            raise _failed(f"the continued video is gone: {exc.message}", True) from exc

    def _delete(self, uri: str) -> None:
        with contextlib.suppress(NotFound):
            self._storage.delete(uri)


def _failed(message: str, retryable: bool) -> JobError:
    error = JobError(message)
    error.retryable = retryable
    return error
