"""Videos made from other videos: a remix's, an extension's or an edit's draft, to submit.

A source is a completed job of the caller's (its stored video, on the model that made it) or an
upload, decoded and checked at the door, cut to one model window at the model's nearest size
and stored (``Delivery.store_upload``) so that a worker can read it; nothing is decoded first
inside a job. ``JobService.extend``/``edit`` and their ``_upload`` twins submit what this makes.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from moviola import editing, segments, sizes, uploads
from moviola.aliases import Aliases
from moviola.catalog import ModelSpec
from moviola.delivery import Delivery
from moviola.errors import FailedPrecondition, InvalidRequest, NotFound
from moviola.jobs import Completed, JobRecord, JobRequest, JobState
from moviola.validation import RequestDraft, resolve_model


def draft_of(request: JobRequest) -> RequestDraft:
    """A job's request as a draft again (a remix's start): what it made, not how it was delivered.

    Its webhooks, previews, deadline and idempotency key stay the original's own.
    """
    return RequestDraft(
        model=request.requested_model or request.model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=request.image or b"",
        width=request.width,
        height=request.height,
        num_frames=request.num_frames,
        fps=request.fps,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        guidance_scale_2=request.guidance_scale_2,
        seed=request.seed,
        priority=request.priority,
        speed_profile=request.speed_profile,
        loras=tuple((lora.name, lora.scale) for lora in request.loras),
    )


class Derive:
    def __init__(
        self, models: dict[str, ModelSpec], default_model: str, aliases: Aliases, delivery: Delivery
    ) -> None:
        self._models, self._default_model = models, default_model
        self._aliases, self._delivery = aliases, delivery

    def _completed(self, source: JobRecord, doing: str) -> tuple[Completed, ModelSpec]:
        result = source.result
        if source.state is not JobState.COMPLETED or result is None:
            raise FailedPrecondition(
                f"job {source.id} is {source.state.value}: only a completed video can be {doing}"
            )
        if self._delivery.links(result, source.finished_at).expired:
            raise NotFound(f"the video of job {source.id} expired")
        spec = self._models.get(source.request.model)
        if spec is None:
            raise InvalidRequest(
                "model", f"{source.request.model}, which made job {source.id}, is not served"
            )
        return result, spec

    def extension(self, source: JobRecord, prompt: str, seconds: str, key: str) -> RequestDraft:
        """``source``'s video, then ``seconds`` more made from ``prompt``, on its model, size and fps."""
        result, made_by = self._completed(source, "extended")
        spec = segments.continuer(made_by, self._models)
        if spec is None:
            raise InvalidRequest(
                "video",
                f"model {made_by.id} cannot continue a video from its frames; models that can: {self._continuers()}",
            )
        draft = draft_of(source.request)
        if (
            spec is not made_by
        ):  # its partner continues it: that model's own guidance, no adapters of the other
            draft = replace(draft, model=spec.id, guidance_scale=None, guidance_scale_2=None, loras=())
        return replace(
            draft,
            prompt=prompt,
            image=b"",
            width=result.width,
            height=result.height,
            fps=result.fps,
            num_frames=0,
            seconds=seconds,
            extended_from=source.id,
            continue_from=result.video_uri,
            continued_frames=result.num_frames,
            idempotency_key=key,
        )

    def edit(self, source: JobRecord, prompt: str, strength: float | None, key: str) -> RequestDraft:
        """``source``'s video made again from ``prompt``, on its model, at its size, fps and frame count."""
        result, spec = self._completed(source, "edited")
        editing.check_editor(spec, self._models)
        strength = editing.check_strength(strength, spec)
        if result.num_frames > spec.limits.max_frames:
            raise InvalidRequest(
                "video",
                f"has {result.num_frames} frames; an edit takes at most one window of {spec.id} "
                f"({spec.limits.max_frames} frames)",
            )
        return replace(
            draft_of(source.request),
            prompt=prompt,
            image=b"",
            width=result.width,
            height=result.height,
            fps=result.fps,
            num_frames=result.num_frames,
            edited_from=source.id,
            edit_from=result.video_uri,
            strength=strength,
            idempotency_key=key,
        )

    async def extension_upload(
        self, video: bytes, prompt: str, seconds: str, model: str, key: str
    ) -> RequestDraft:
        """The last window of an uploaded video, then ``seconds`` more made from ``prompt``."""
        named = resolve_model(model, self._models, self._default_model, self._aliases)
        spec = segments.continuer(named, self._models)
        if spec is None:
            raise InvalidRequest(
                "model", f"{named.id} cannot continue a video; models that can: {self._continuers()}"
            )
        draft, count, stored = await self._uploaded(uploads.tail, video, spec, prompt, key, last=True)
        if count <= segments.overlap(spec):
            raise InvalidRequest(
                "video", f"has {count} frames; an extension needs more than {segments.overlap(spec)}"
            )
        return replace(draft, seconds=seconds, continue_from=stored, continued_frames=count)

    async def edit_upload(
        self, video: bytes, prompt: str, strength: float | None, model: str, key: str
    ) -> RequestDraft:
        """The first window of an uploaded video, made again from ``prompt``."""
        spec = resolve_model(model, self._models, self._default_model, self._aliases)
        editing.check_editor(spec, self._models)
        strength = editing.check_strength(strength, spec)
        draft, count, stored = await self._uploaded(uploads.head, video, spec, prompt, key, last=False)
        return replace(draft, num_frames=count, edit_from=stored, strength=strength)

    async def _uploaded(
        self, read: uploads.Reader, video: bytes, spec: ModelSpec, prompt: str, key: str, *, last: bool
    ) -> tuple[RequestDraft, int, str]:
        """The upload's window of ``k·n+1`` frames (its end, or its start) at the model's nearest size,
        stored: the draft on its model, size and fps, its frame count, and where it is stored."""
        frames = await asyncio.to_thread(
            read, video, spec.limits.max_frames, lambda w, h: sizes.nearest(spec, w, h)
        )
        k = spec.limits.frame_multiple
        kept = (len(frames) - 1) // k * k + 1
        frames = frames[-kept:] if last else frames[:kept]
        stored = await asyncio.to_thread(self._delivery.store_upload, frames, spec.defaults.fps)
        count, height, width, _ = frames.shape
        fps = spec.defaults.fps
        draft = RequestDraft(
            model=spec.id, prompt=prompt, width=width, height=height, fps=fps, idempotency_key=key
        )
        return draft, count, stored

    def _continuers(self) -> str:
        return ", ".join(m for m, s in self._models.items() if segments.continues(s)) or "none served"
