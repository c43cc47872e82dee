"""Request validation: every field checked before anything is queued.

A request that passes becomes a ``JobRequest`` with every default filled in
and the seed chosen, so a job never depends on the server's defaults later.
Failures raise ``InvalidRequest`` naming the proto field.

The limits below bound every string and bytes field a caller can send (generation and
embedding alike); docs/api.md ("Limits") lists them. They are checked before any other
work, so that an oversized field costs no more than reading the message.
"""

from __future__ import annotations

import io
import math
import secrets
import zlib
from dataclasses import dataclass, replace

from moviola import editing, segments, tuning
from moviola.adapters import AdapterCatalog
from moviola.aliases import Aliases
from moviola.catalog import ImageInput, ModelSpec
from moviola.errors import InvalidRequest
from moviola.jobs import JobRequest, Priority
from moviola.sizes import made, parse_size

#: Model ids and families, embedding model names, size presets: longer than any real one.
MAX_NAME_CHARS = 128
#: ``prompt`` and ``negative_prompt``: a model's ``max_prompt_chars`` (catalogue), never above this.
MAX_PROMPT_CHARS = 8192
#: ``Embed.text``: text encoders truncate at a few hundred tokens; more is only work.
MAX_EMBED_TEXT_CHARS = 4096
#: Any image (``GenerateRequest.image``, ``Embed.image``); a model's ``max_image_bytes`` can lower it.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: Pixels of a decoded image (a 50-megapixel photo fits) and the longest side; read from the header.
#: Below Pillow's own decompression-bomb threshold (89 Mpx), so Pillow never warns on an image we accept.
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_SIDE = 16384
#: The image formats accepted; Pillow parses no other format's header.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
#: ``Embed.video`` bytes, and the file a ``video_uri`` names (the gRPC message limit applies first).
MAX_VIDEO_BYTES = 64 * 1024 * 1024
#: ``Embed.video_uri``: PATH_MAX on Linux.
MAX_URI_CHARS = 4096
MAX_IDEMPOTENCY_KEY = 128
#: Job ids (32 hex digits as the server makes them).
MAX_JOB_ID_CHARS = 64


def check_length(field: str, value: str | bytes, limit: int) -> None:
    """``InvalidRequest`` naming ``field`` when ``value`` has more than ``limit`` characters (bytes: bytes).

    >>> check_length("model", "x" * 129, MAX_NAME_CHARS)
    Traceback (most recent call last):
    moviola.errors.InvalidRequest: model: must be at most 128 characters (got 129)
    """
    if len(value) > limit:
        unit = "bytes" if isinstance(value, bytes) else "characters"
        raise InvalidRequest(field, f"must be at most {limit} {unit} (got {len(value)})")


def check_image(data: bytes, field: str = "image", *, max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """Check an encoded image, then decode every pixel of it; return its format.

    The one check every image a caller sends goes through, so that a job never fails on an image it
    could have refused at submit: not empty, at most ``max_bytes``, one of ``IMAGE_FORMATS``, at most
    ``MAX_IMAGE_PIXELS`` and ``MAX_IMAGE_SIDE`` (from the header, before any pixel is decoded), (PNG)
    chunks intact, and then decoded in full (truncated or corrupt pixel data fails here). Raises
    ``InvalidRequest`` naming ``field`` (each face's name for it: ``image``, ``input_reference``).
    """
    if not data:
        raise InvalidRequest(field, "is empty")
    if len(data) > max_bytes:
        raise InvalidRequest(field, f"is {len(data)} bytes; the limit is {max_bytes}")
    from PIL import Image, UnidentifiedImageError  # lazily: a gateway that never sees an image skips it

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image_format, (width, height) = str(image.format), image.size
            _check_pixels(field, width, height)
            image.verify()  # PNG: every chunk present with its checksum; decodes nothing
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image.load()  # every pixel, within the limits just checked: "image file is truncated" is ours
    except UnidentifiedImageError as exc:
        raise InvalidRequest(
            field, "must be PNG, JPEG or WebP; this is not a decodable image of those formats"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own check, in Image.open, for headers far beyond ours; the size is only in its message.
        raise InvalidRequest(field, f"has more than {MAX_IMAGE_PIXELS} pixels ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, zlib.error) as exc:
        raise InvalidRequest(field, f"is not a decodable PNG, JPEG or WebP image ({exc})") from exc
    return image_format


def _check_pixels(field: str, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise InvalidRequest(
            field,
            f"is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels and {MAX_IMAGE_SIDE} on a side",
        )


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
    #: The job this one remixes (REST ``/videos/{id}/remix``).
    remixed_from: str = ""
    #: Where to POST the job's events (signed webhooks), and which ones (empty: all but progress).
    webhook_url: str = ""
    webhook_events: tuple[str, ...] = ()
    #: A preview image on every N-th step's progress event (0: none).
    preview_every: int = 0
    #: "exact", "fast", "turbo" or "" (the worker's default).
    speed_profile: str = ""
    #: LoRA adapters by name, each with its scale (None: 1.0).
    loras: tuple[tuple[str, float | None], ...] = ()
    #: What the caller's face calls ``image`` in its errors (REST: ``input_reference``).
    image_field: str = "image"
    #: ``"WxH"`` (the REST face's ``size``) instead of width and height; Sora's sizes map to the model's.
    size: str = ""
    #: Seconds of video (the REST face's ``seconds``) instead of num_frames.
    seconds: str = ""
    #: An extension of the job ``extended_from``, whose video (``continue_from``, ``continued_frames``
    #: frames) comes first; ``seconds`` or ``num_frames`` are then the frames added.
    extended_from: str = ""
    continue_from: str = ""
    continued_frames: int = 0
    #: An edit of the job ``edited_from`` ("" for an uploaded video), whose stored video ``edit_from`` has
    #: the draft's size and ``num_frames``; ``strength`` (None: the model's ``defaults.edit_strength``) only with it.
    edited_from: str = ""
    edit_from: str = ""
    strength: float | None = None
    #: A character of the caller's (``characters.py``); the job service puts its reference image in ``image``.
    character_id: str = ""


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
    limit = min(spec.limits.max_prompt_chars, MAX_PROMPT_CHARS)
    if len(value) > limit:
        raise InvalidRequest(field, f"is {len(value)} characters; the limit is {limit}")
    return value


def _image(value: bytes, spec: ModelSpec, field: str, *, extension: bool = False) -> bytes | None:
    """The input image, checked; an extension needs none (it continues from the video's frames)."""
    if not value:
        if spec.image_input is ImageInput.REQUIRED and not extension:
            raise InvalidRequest(field, f"model {spec.id} is image-to-video and needs an input image")
        return None
    if spec.image_input is ImageInput.UNSUPPORTED:
        raise InvalidRequest(field, f"model {spec.id} is text-to-video only; send no image")
    check_image(value, field, max_bytes=min(spec.limits.max_image_bytes, MAX_IMAGE_BYTES))
    return value


def _character(draft: RequestDraft, spec: ModelSpec, models: dict[str, ModelSpec]) -> None:
    """A character is an image to condition on: ``InvalidRequest`` naming it on a model that takes none."""
    if not draft.character_id or spec.image_input is not ImageInput.UNSUPPORTED:
        return
    takers = [s.id for s in models.values() if s.image_input is not ImageInput.UNSUPPORTED]
    served = f"served models that take one: {', '.join(takers)}" if takers else "no served model takes one"
    raise InvalidRequest(
        "character_id",
        f"model {spec.id} is text-to-video only; a character is a reference image for image-to-video ({served})",
    )


def resolve_model(
    name: str, models: dict[str, ModelSpec], default_model: str, aliases: Aliases | None = None
) -> ModelSpec:
    """The served model a request names: an exact id, a family, an alias, or empty for the default."""
    name = name or default_model
    if name in models:
        return models[name]
    family = [spec for spec in models.values() if spec.family == name]
    if family:
        return family[0]
    target = aliases.resolve(name) if aliases is not None else None
    if target is not None and target in models:
        return models[target]
    known = [*models, *(aliases.names if aliases is not None else ())]
    raise InvalidRequest("model", f"unknown model {name!r}; this server serves: {', '.join(known)}")


def _check_lengths(draft: RequestDraft) -> None:
    """The global limits, before anything reads a field (an unknown model's name is quoted back)."""
    check_length("model", draft.model, MAX_NAME_CHARS)
    check_length("resolution", draft.resolution, MAX_NAME_CHARS)
    check_length("prompt", draft.prompt, MAX_PROMPT_CHARS)
    check_length("negative_prompt", draft.negative_prompt, MAX_PROMPT_CHARS)
    check_length("idempotency_key", draft.idempotency_key, MAX_IDEMPOTENCY_KEY)
    check_length(draft.image_field, draft.image, MAX_IMAGE_BYTES)
    check_length("webhook_url", draft.webhook_url, MAX_WEBHOOK_URL)
    for i, (name, _) in enumerate(draft.loras[: tuning.MAX_LORAS + 1]):
        check_length(f"loras[{i}].name", name, MAX_NAME_CHARS)


def validate(
    draft: RequestDraft,
    models: dict[str, ModelSpec],
    default_model: str,
    adapters: AdapterCatalog | None = None,
    *,
    aliases: Aliases | None = None,
    strict_sizes: bool = False,
    tenant: str = "",
) -> JobRequest:
    """Check ``draft`` against the model it names (and the adapters registered); return the complete request,
    ``tenant``'s.

    Raises ``InvalidRequest`` for the first invalid field.
    """
    _check_lengths(draft)
    spec = resolve_model(draft.model, models, default_model, aliases)
    d = spec.defaults
    width, height = _preset(draft, spec)
    if draft.size:
        width, height = made(spec, draft.size, *parse_size(draft.size), strict=strict_sizes)
    if draft.seconds:
        draft = replace(
            draft, num_frames=segments.frames_for_seconds(draft.seconds, draft.fps or d.fps, spec, models)
        )
    if draft.continued_frames:  # an extension: the video so far, then the frames added (both k·n+1)
        added = draft.num_frames or d.num_frames
        draft = replace(draft, num_frames=draft.continued_frames + added - 1)
    if draft.max_wait is not None and draft.max_wait < 0:
        raise InvalidRequest("max_wait", "must not be negative")
    if draft.guidance_scale_2 is not None and not spec.mixture_of_experts:
        raise InvalidRequest(
            "guidance_scale_2", f"only mixture-of-experts models use it; {spec.id} is not one"
        )
    tuning.check_profile(draft.speed_profile, spec)
    if draft.speed_profile == "turbo":
        steps, guidance, guidance_2 = tuning.turbo(
            spec, draft.num_inference_steps, draft.guidance_scale, draft.guidance_scale_2
        )
        draft = replace(
            draft, num_inference_steps=steps, guidance_scale=guidance, guidance_scale_2=guidance_2
        )
    steps = _bounded(
        "num_inference_steps", draft.num_inference_steps, d.num_inference_steps, spec.limits.max_steps, spec
    )
    if not 0 <= draft.preview_every <= steps:
        raise InvalidRequest(
            "preview_every", f"must be between 0 (no previews) and num_inference_steps ({steps})"
        )
    loras = tuning.loras(draft.loras, spec, adapters or AdapterCatalog())
    _character(draft, spec, models)
    strength = editing.strength_of(bool(draft.edit_from), draft.strength, steps, spec, models)
    return JobRequest(
        model=spec.id,
        prompt=_text("prompt", draft.prompt, spec, required=True),
        negative_prompt=_text("negative_prompt", draft.negative_prompt, spec, required=False),
        image=_image(draft.image, spec, draft.image_field, extension=bool(draft.continue_from)),
        width=_size("size" if draft.size else "width", width, d.width, spec),
        height=_size("size" if draft.size else "height", height, d.height, spec),
        num_frames=segments.frames(
            draft.num_frames, spec, draft.fps or d.fps, models, "seconds" if draft.seconds else "num_frames"
        ),
        fps=_bounded("fps", draft.fps, d.fps, spec.limits.max_fps, spec),
        num_inference_steps=steps,
        guidance_scale=_guidance("guidance_scale", draft.guidance_scale, d.guidance_scale, spec) or 0.0,
        guidance_scale_2=_guidance("guidance_scale_2", draft.guidance_scale_2, d.guidance_scale_2, spec),
        seed=draft.seed if draft.seed is not None else secrets.randbelow(2**32),
        priority=draft.priority,
        idempotency_key=draft.idempotency_key,
        tenant=tenant,
        traceparent=draft.traceparent,
        remixed_from=draft.remixed_from,
        requested_model=draft.model if draft.model not in ("", spec.id) else "",
        extended_from=draft.extended_from,
        continue_from=draft.continue_from,
        continued_frames=draft.continued_frames,
        edited_from=draft.edited_from,
        edit_from=draft.edit_from,
        strength=strength,
        webhook_url=draft.webhook_url,
        webhook_events=_webhook_events(draft),
        preview_every=draft.preview_every,
        speed_profile=draft.speed_profile,
        loras=loras,
    )


#: Longest webhook URL.
MAX_WEBHOOK_URL = 2048
#: Events a webhook may ask for; without a choice, all but progress.
WEBHOOK_EVENTS = ("started", "completed", "failed", "cancelled", "progress")
DEFAULT_WEBHOOK_EVENTS = ("started", "completed", "failed", "cancelled")


def _webhook_events(draft: RequestDraft) -> tuple[str, ...]:
    """The events the webhook wants; checks the URL's form (where it points is the webhook policy's call)."""
    if not draft.webhook_url:
        if draft.webhook_events:
            raise InvalidRequest("webhook_events", "needs a webhook_url")
        return ()
    scheme, _, rest = draft.webhook_url.partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if scheme not in ("http", "https") or not host:
        raise InvalidRequest("webhook_url", "must be an http:// or https:// URL with a host")
    unknown = sorted(set(draft.webhook_events) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidRequest(
            "webhook_events", f"unknown events {unknown} (known: {', '.join(WEBHOOK_EVENTS)})"
        )
    return tuple(dict.fromkeys(draft.webhook_events)) or DEFAULT_WEBHOOK_EVENTS
