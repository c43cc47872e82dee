"""Request validation: every field checked before anything is queued.

A request that passes becomes a ``JobRequest`` with every default filled in
and the seed chosen, so a job never depends on the server's defaults later.
Failures raise ``InvalidRequest`` naming the proto field.
"""

from __future__ import annotations

import io
import math
import secrets
from dataclasses import dataclass

from moviola.catalog import ImageInput, ModelSpec
from moviola.errors import InvalidRequest
from moviola.jobs import JobRequest, Priority

MAX_IDEMPOTENCY_KEY = 128
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class RequestDraft:
    """A request as the caller sent it; zero or None means "the model's default"."""

    model: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    image: bytes = b""
    width: int = 0
    height: int = 0
    num_frames: int = 0
    fps: int = 0
    num_inference_steps: int = 0
    guidance_scale: float | None = None
    guidance_scale_2: float | None = None
    seed: int | None = None
    priority: Priority = Priority.INTERACTIVE
    idempotency_key: str = ""
    #: Run on the model's fallback when the model cannot start the job in time.
    allow_fallback: bool = False
    #: Longest acceptable wait before the job starts, in seconds.
    max_wait: float | None = None
    #: A size preset of the model ("480p") instead of width and height.
    resolution: str = ""
    #: The caller's W3C trace context (from gRPC metadata).
    traceparent: str = ""


def _preset(draft: RequestDraft, spec: ModelSpec) -> tuple[int, int]:
    if not draft.resolution:
        return draft.width, draft.height
    if draft.width or draft.height:
        raise InvalidRequest("resolution", "give either resolution or width and height, not both")
    if draft.resolution not in spec.presets:
        known = ", ".join(spec.presets) or "none"
        raise InvalidRequest(
            "resolution", f"model {spec.id} has no preset {draft.resolution!r} (presets: {known})"
        )
    return spec.presets[draft.resolution]


def _size(field: str, value: int, default: int, spec: ModelSpec) -> int:
    if value == 0:
        return default
    limits = spec.limits
    multiple = limits.size_multiple
    if value % multiple:
        lower = max(value // multiple * multiple, limits.min_size)
        raise InvalidRequest(
            field,
            f"must be a multiple of {multiple} for model {spec.id} (got {value}; nearest valid: "
            f"{lower} or {lower + multiple})",
        )
    if not limits.min_size <= value <= limits.max_size:
        raise InvalidRequest(
            field, f"must be within {limits.min_size}..{limits.max_size} for model {spec.id} (got {value})"
        )
    return value


def _frames(value: int, spec: ModelSpec) -> int:
    if value == 0:
        return spec.defaults.num_frames
    limits = spec.limits
    k = limits.frame_multiple
    if (value - 1) % k:
        lower = (value - 1) // k * k + 1
        raise InvalidRequest(
            "num_frames",
            f"must be {k}k+1 for model {spec.id}, which would otherwise round it silently "
            f"(got {value}; nearest valid: {lower} or {lower + k})",
        )
    if value > limits.max_frames:
        raise InvalidRequest(
            "num_frames", f"must be at most {limits.max_frames} for model {spec.id} (got {value})"
        )
    return value


def _bounded(field: str, value: int, default: int, maximum: int, spec: ModelSpec) -> int:
    if value == 0:
        return default
    if value > maximum:
        raise InvalidRequest(field, f"must be within 1..{maximum} for model {spec.id} (got {value})")
    return value


def _guidance(field: str, value: float | None, default: float | None, spec: ModelSpec) -> float | None:
    if value is None:
        return default
    maximum = spec.limits.max_guidance_scale
    if math.isnan(value) or not 0.0 <= value <= maximum:
        raise InvalidRequest(field, f"must be within 0..{maximum:g} (got {value:g})")
    return value


def _text(field: str, value: str, spec: ModelSpec, *, required: bool) -> str:
    if required and not value.strip():
        raise InvalidRequest(field, "must not be empty")
    limit = spec.limits.max_prompt_chars
    if len(value) > limit:
        raise InvalidRequest(field, f"is {len(value)} characters; the limit is {limit}")
    return value


def _image(value: bytes, spec: ModelSpec) -> bytes | None:
    if not value:
        if spec.image_input is ImageInput.REQUIRED:
            raise InvalidRequest("image", f"model {spec.id} is image-to-video and needs an input image")
        return None
    if spec.image_input is ImageInput.UNSUPPORTED:
        raise InvalidRequest("image", f"model {spec.id} is text-to-video only; leave image empty")
    limit = spec.limits.max_image_bytes
    if len(value) > limit:
        raise InvalidRequest("image", f"is {len(value)} bytes; the limit is {limit}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(value)) as image:
            image_format = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidRequest("image", f"is not a decodable PNG, JPEG or WebP image ({exc})") from exc
    if image_format not in IMAGE_FORMATS:
        raise InvalidRequest("image", f"must be PNG, JPEG or WebP (got {image_format})")
    return value


def resolve_model(name: str, models: dict[str, ModelSpec], default_model: str) -> ModelSpec:
    """The served model a request names: an exact id, a family, or empty for the default."""
    name = name or default_model
    if name in models:
        return models[name]
    family = [spec for spec in models.values() if spec.family == name]
    if family:
        return family[0]
    raise InvalidRequest("model", f"unknown model {name!r}; this server serves: {', '.join(models)}")


def validate(draft: RequestDraft, models: dict[str, ModelSpec], default_model: str) -> JobRequest:
    """Check ``draft`` against the model it names; return the complete request.

    Raises ``InvalidRequest`` for the first invalid field.
    """
    spec = resolve_model(draft.model, models, default_model)
    d = spec.defaults
    width, height = _preset(draft, spec)
    if draft.max_wait is not None and draft.max_wait < 0:
        raise InvalidRequest("max_wait", "must not be negative")
    if draft.guidance_scale_2 is not None and not spec.mixture_of_experts:
        raise InvalidRequest(
            "guidance_scale_2", f"only mixture-of-experts models use it; {spec.id} is not one"
        )
    if len(draft.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest("idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
    return JobRequest(
        model=spec.id,
        prompt=_text("prompt", draft.prompt, spec, required=True),
        negative_prompt=_text("negative_prompt", draft.negative_prompt, spec, required=False),
        image=_image(draft.image, spec),
        width=_size("width", width, d.width, spec),
        height=_size("height", height, d.height, spec),
        num_frames=_frames(draft.num_frames, spec),
        fps=_bounded("fps", draft.fps, d.fps, spec.limits.max_fps, spec),
        num_inference_steps=_bounded(
            "num_inference_steps",
            draft.num_inference_steps,
            d.num_inference_steps,
            spec.limits.max_steps,
            spec,
        ),
        guidance_scale=_guidance("guidance_scale", draft.guidance_scale, d.guidance_scale, spec) or 0.0,
        guidance_scale_2=_guidance("guidance_scale_2", draft.guidance_scale_2, d.guidance_scale_2, spec),
        seed=draft.seed if draft.seed is not None else secrets.randbelow(2**32),
        priority=draft.priority,
        idempotency_key=draft.idempotency_key,
        traceparent=draft.traceparent,
    )
