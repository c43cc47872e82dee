"""Conversions between the protos of ``moviola.v1`` and the domain types, for both faces.

The gRPC face sends these messages; the REST face sends an event's protobuf JSON on its SSE
stream. Neither face imports the other: both import this.
"""

from __future__ import annotations

import enum
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from moviola import jobs
from moviola.characters import Character
from moviola.delivery import Links
from moviola.errors import InvalidRequest
from moviola.scheduler.base import DeadLetter
from moviola.service import ModelStatus
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb
from moviola.validation import MAX_IMAGE_BYTES, MAX_PROMPT_CHARS, RequestDraft


def _enum(proto_enum: Any, prefix: str, value: enum.Enum) -> Any:
    return proto_enum.Value(f"{prefix}_{value.name}")


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


_PRIORITIES = {
    pb.PRIORITY_UNSPECIFIED: jobs.Priority.INTERACTIVE,
    pb.PRIORITY_INTERACTIVE: jobs.Priority.INTERACTIVE,
    pb.PRIORITY_BATCH: jobs.Priority.BATCH,
}


def draft(request: pb.GenerateRequest, traceparent: str = "") -> RequestDraft:
    return RequestDraft(
        model=request.model,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=request.image,
        width=request.width,
        height=request.height,
        num_frames=request.num_frames,
        fps=request.fps,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale if request.HasField("guidance_scale") else None,
        guidance_scale_2=request.guidance_scale_2 if request.HasField("guidance_scale_2") else None,
        seed=request.seed if request.HasField("seed") else None,
        priority=_PRIORITIES.get(request.priority, jobs.Priority.INTERACTIVE),
        idempotency_key=request.idempotency_key,
        allow_fallback=request.allow_fallback,
        max_wait=request.max_wait.ToNanoseconds() / 1e9 if request.HasField("max_wait") else None,
        resolution=request.resolution,
        traceparent=traceparent,
        webhook_url=request.webhook_url,
        webhook_events=tuple(request.webhook_events),
        preview_every=request.preview_every,
        speed_profile=_speed_profile(request.speed_profile),
        loras=tuple((lora.name, lora.scale if lora.HasField("scale") else None) for lora in request.loras),
        character_id=request.character_id,
        seconds=f"{request.seconds:g}" if request.seconds else "",
    )


def loras(values: tuple[jobs.LoraChoice, ...]) -> list[pb.LoraAdapter]:
    return [pb.LoraAdapter(name=lora.name, scale=lora.scale) for lora in values]


def _speed_profile(value: int) -> str:
    """A proto SpeedProfile as the request's name ("" for unspecified); ``InvalidRequest`` when unknown."""
    if value == pb.SPEED_PROFILE_UNSPECIFIED:
        return ""
    try:
        return pb.SpeedProfile.Name(value).removeprefix("SPEED_PROFILE_").lower()  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequest("speed_profile", f"unknown speed profile {value}") from exc


def request(value: jobs.JobRequest) -> pb.GenerateRequest:
    """The complete request, without the image bytes (they can be megabytes)."""
    out = pb.GenerateRequest(
        model=value.model,
        prompt=value.prompt,
        negative_prompt=value.negative_prompt,
        width=value.width,
        height=value.height,
        num_frames=value.num_frames,
        fps=value.fps,
        num_inference_steps=value.num_inference_steps,
        guidance_scale=value.guidance_scale,
        seed=value.seed,
        priority=pb.PRIORITY_BATCH if value.priority is jobs.Priority.BATCH else pb.PRIORITY_INTERACTIVE,
        idempotency_key=value.idempotency_key,
    )
    if value.guidance_scale_2 is not None:
        out.guidance_scale_2 = value.guidance_scale_2
    if value.speed_profile:
        out.speed_profile = pb.SpeedProfile.Value(f"SPEED_PROFILE_{value.speed_profile.upper()}")
    out.loras.extend(loras(value.loras))
    return out


def progress(value: jobs.Progress) -> pb.Progress:
    preview = value.preview
    return pb.Progress(
        preview=None
        if preview is None
        else pb.Preview(
            image=preview.image, mime_type=preview.mime_type, width=preview.width, height=preview.height
        ),
        step=value.step,
        total_steps=value.total_steps,
        timestep=value.timestep,
        expert=_enum(pb.Expert, "EXPERT", value.expert),
        elapsed=_duration(value.elapsed),
        remaining=_duration(value.remaining),
        cached=value.cached,
        transformer_passes=value.transformer_passes,
        loras=loras(value.loras),
        segment=value.segment,
        total_segments=value.total_segments,
    )


def completed(value: jobs.Completed, links: Links | None = None) -> pb.Completed:
    t = value.timings
    out = pb.Completed(
        video_uri=value.video_uri,
        width=value.width,
        height=value.height,
        num_frames=value.num_frames,
        fps=value.fps,
        seed=value.seed,
        model=value.model,
        timings=pb.Timings(
            queued=_duration(t.queued),
            text_encoding=_duration(t.text_encoding),
            denoising=_duration(t.denoising),
            vae_decoding=_duration(t.vae_decoding),
            video_encoding=_duration(t.video_encoding),
            storing=_duration(t.storing),
            running=_duration(t.running),
        ),
        size_bytes=value.size_bytes,
        mime_type=value.mime_type,
        peak_memory_bytes=value.peak_memory_bytes,
        thumbnail_uri=value.thumbnail_uri,
        speed_profile=pb.SpeedProfile.Value(f"SPEED_PROFILE_{value.speed_profile.upper()}")
        if value.speed_profile
        else pb.SPEED_PROFILE_UNSPECIFIED,
        cached_steps=value.cached_steps,
        loras=loras(value.loras),
        transformer_passes=value.transformer_passes,
        quantization=value.quantization,
        segments=value.segments,
    )
    if links is not None:
        out.download_url, out.thumbnail_download_url, out.expired = (
            links.video_url,
            links.thumbnail_url,
            links.expired,
        )
        if links.url_expires_at is not None:
            out.download_url_expire_time.CopyFrom(timestamp(links.url_expires_at))
        if links.expires_at is not None:
            out.expire_time.CopyFrom(timestamp(links.expires_at))
    return out


def failed(value: jobs.Failed) -> pb.Failed:
    return pb.Failed(
        code=_enum(pb.FailureCode, "FAILURE_CODE", value.code),
        message=value.message,
        retryable=value.retryable,
    )


def event(value: jobs.JobEvent, links: Links | None = None) -> pb.JobEvent:
    out = pb.JobEvent(
        job_id=value.job_id, sequence=value.sequence, time=timestamp(value.time), model=value.model
    )
    kind = value.kind
    match kind:
        case jobs.Queued(position=position):
            out.queued.position = position
        case jobs.Started(worker=worker, attempt=attempt):
            out.started.CopyFrom(pb.Started(worker=worker, attempt=attempt))
        case jobs.PhaseChanged(phase=phase):
            out.phase_changed.phase = _enum(pb.Phase, "PHASE", phase)
        case jobs.Progress():
            out.progress.CopyFrom(progress(kind))
        case jobs.Completed():
            out.completed.CopyFrom(completed(kind, links))
        case jobs.Failed():
            out.failed.CopyFrom(failed(kind))
        case jobs.Cancelled(reason=reason):
            out.cancelled.reason = reason
    return out


def job_state(value: int) -> jobs.JobState | None:
    """A proto JobState as a filter: None for unspecified; ``InvalidRequest`` naming ``state`` when unknown."""
    if value == pb.JOB_STATE_UNSPECIFIED:
        return None
    try:
        return jobs.JobState[pb.JobState.Name(value).removeprefix("JOB_STATE_")]  # type: ignore[arg-type]
    except (ValueError, KeyError) as exc:
        raise InvalidRequest("state", f"unknown job state {value}") from exc


def job(record: jobs.JobRecord, links: Links | None = None) -> pb.Job:
    out = pb.Job(
        id=record.id,
        state=_enum(pb.JobState, "JOB_STATE", record.state),
        request=request(record.request),
        model=record.model,
        create_time=timestamp(record.created_at),
        last_sequence=record.last_sequence,
        queue_position=record.queue_position,
        extended_from=record.request.extended_from,
        edited_from=record.request.edited_from,
    )
    if record.progress is not None:
        out.progress.CopyFrom(progress(record.progress))
    if record.result is not None:
        out.result.CopyFrom(completed(record.result, links))
    if record.failure is not None:
        out.failure.CopyFrom(failed(record.failure))
    if record.cancellation is not None:
        out.cancellation.reason = record.cancellation.reason
    return out


def model(status: ModelStatus) -> gen.ModelInfo:
    spec, d, limits = status.spec, status.spec.defaults, status.spec.limits
    return gen.ModelInfo(
        id=spec.id,
        description=spec.description,
        pipeline_class=spec.pipeline_class,
        source=spec.source,
        ready=status.ready,
        random_weights=spec.random_weights,
        mixture_of_experts=spec.mixture_of_experts,
        boundary_ratio=spec.boundary_ratio or 0.0,
        image_input=_enum(gen.ImageInput, "IMAGE_INPUT", spec.image_input),
        defaults=gen.ModelDefaults(
            width=d.width,
            height=d.height,
            num_frames=d.num_frames,
            fps=d.fps,
            num_inference_steps=d.num_inference_steps,
            guidance_scale=d.guidance_scale,
            guidance_scale_2=d.guidance_scale_2 or 0.0,
            edit_strength=spec.default_edit_strength or 0.0,
        ),
        limits=gen.ModelLimits(
            size_multiple=limits.size_multiple,
            min_size=limits.min_size,
            max_size=limits.max_size,
            frame_multiple=limits.frame_multiple,
            max_frames=limits.max_frames,
            max_steps=limits.max_steps,
            max_guidance_scale=limits.max_guidance_scale,
            # What validation enforces: the catalogue's limit, capped by the server's own.
            max_prompt_chars=min(limits.max_prompt_chars, MAX_PROMPT_CHARS),
            max_image_bytes=min(limits.max_image_bytes, MAX_IMAGE_BYTES),
            max_fps=limits.max_fps,
        ),
        family=spec.family,
        fallback=spec.fallback or "",
        license=spec.license,
        presets=[gen.SizePreset(name=name, width=w, height=h) for name, (w, h) in spec.presets.items()],
        adapters=[
            gen.AdapterInfo(
                name=a.name, description=a.description, license=a.license, trigger_words=list(a.trigger_words)
            )
            for a in status.adapters
        ],
        turbo=None
        if spec.turbo is None
        else gen.TurboProfile(
            steps=spec.turbo.steps, max_steps=spec.turbo.max_steps, adapter=spec.turbo.adapter
        ),
        aliases=list(status.aliases),
    )


def dead_letter(value: DeadLetter) -> gen.DeadLetter:
    return gen.DeadLetter(
        job_id=value.job_id,
        model=value.model,
        error=value.error,
        attempts=value.attempts,
        time=timestamp(value.time),
    )


def character(value: Character) -> gen.Character:
    return gen.Character(
        id=value.id,
        name=value.name,
        create_time=timestamp(value.created_at),
        width=value.width,
        height=value.height,
    )
