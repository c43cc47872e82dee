"""Building a ``GenerateRequest`` from keyword options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import job_pb2 as pb
from moviola.v1 import search_pb2 as search

PRIORITIES = {"interactive": pb.PRIORITY_INTERACTIVE, "batch": pb.PRIORITY_BATCH}
SPEED_PROFILES = {
    "exact": pb.SPEED_PROFILE_EXACT,
    "fast": pb.SPEED_PROFILE_FAST,
    "turbo": pb.SPEED_PROFILE_TURBO,
}
#: Options given by name whose proto field is an enum.
ENUMS: dict[str, dict[str, Any]] = {"priority": PRIORITIES, "speed_profile": SPEED_PROFILES}


class RequestOptions(TypedDict, total=False):
    model: str
    negative_prompt: str
    image: bytes
    #: A character of your tenant (``create_character``): its reference image instead of ``image``.
    character_id: str
    width: int
    height: int
    num_frames: int
    #: Seconds of video instead of ``num_frames``; past one model window, made as segments (docs/api.md).
    seconds: float
    fps: int
    num_inference_steps: int
    guidance_scale: float
    guidance_scale_2: float
    seed: int
    priority: str
    idempotency_key: str
    allow_fallback: bool
    resolution: str
    max_wait: float
    #: POST this job's events here as signed webhooks; which ones ("completed", ...; default all but progress).
    webhook_url: str
    webhook_events: list[str]
    #: A preview image (``event.progress.preview``) on every N-th denoising step and the last.
    preview_every: int
    #: "exact" (the pipeline's numerics), "fast" (a step cache) or "turbo" (the model's step-distilled
    #: adapter: a few steps, no guidance); unset: the worker's default.
    speed_profile: str
    #: LoRA adapters by name (``ListModels``' ``adapters``): ``"NAME"``, ``"NAME:SCALE"`` or ``(NAME, SCALE)``.
    loras: Sequence[str | tuple[str, float]]


def make_request(prompt: str | pb.GenerateRequest, **options: object) -> pb.GenerateRequest:
    """``make_request("a fox", num_frames=17, priority="batch")``; unset options take the model's defaults."""
    if isinstance(prompt, pb.GenerateRequest):
        if options:
            raise TypeError("pass options or a GenerateRequest, not both")
        return prompt
    request = pb.GenerateRequest(prompt=prompt)
    for name, value in options.items():
        if value is None:
            continue
        if name == "max_wait":
            request.max_wait.FromNanoseconds(round(float(value) * 1e9))  # type: ignore[arg-type]
        elif name in ENUMS:
            names = ENUMS[name]
            if value not in names:
                raise ValueError(f"{name} must be one of {', '.join(names)}")
            setattr(request, name, names[str(value)])
        elif name == "loras":
            request.loras.extend(lora(item) for item in value)  # type: ignore[attr-defined]
        elif name == "webhook_events":
            request.webhook_events.extend(str(event) for event in value)  # type: ignore[attr-defined]
        else:
            setattr(request, name, value)
    return request


def lora(value: str | tuple[str, float] | pb.LoraAdapter) -> pb.LoraAdapter:
    """An adapter and its scale from ``"NAME"``, ``"NAME:SCALE"`` or ``(NAME, SCALE)``.

    >>> lora("ink-wash:0.8").scale
    0.800000011920929
    """
    if isinstance(value, pb.LoraAdapter):
        return value
    if isinstance(value, tuple):
        return pb.LoraAdapter(name=value[0], scale=float(value[1]))
    name, sep, scale = value.rpartition(":") if ":" in value else (value, "", "")
    if not sep:
        return pb.LoraAdapter(name=value)
    try:
        return pb.LoraAdapter(name=name, scale=float(scale))
    except ValueError:
        raise ValueError(f"a LoRA adapter is NAME or NAME:SCALE, got {value!r}") from None


class EmbedOptions(TypedDict, total=False):
    text: str
    image: bytes
    video: bytes
    video_uri: str
    job_id: str
    model: str
    frame_count: int
    frames_per_second: float
    pooling: str
    return_frame_embeddings: bool


class SearchOptions(TypedDict, total=False):
    text: str
    image: bytes
    video: bytes
    job_id: str
    top_k: int
    models: Sequence[str]
    #: Unix seconds.
    created_after: float
    created_before: float


def make_search_request(**options: Any) -> search.SearchVideosRequest:
    """``make_search_request(text="a red fox", top_k=5)``: exactly one of text, image, video, job_id."""
    inputs = [k for k in ("text", "image", "video", "job_id") if options.get(k) is not None]
    if len(inputs) != 1:
        raise ValueError("pass exactly one of text, image, video or job_id")
    request = search.SearchVideosRequest(models=list(options.pop("models", None) or ()))
    for name in ("created_after", "created_before"):
        seconds = options.pop(name, None)
        if seconds is not None:
            getattr(request, name).FromNanoseconds(round(float(seconds) * 1e9))
    for name, value in options.items():
        if value is not None:
            setattr(request, name, value)
    return request


POOLINGS = {"mean": emb.POOLING_MEAN, "temporal": emb.POOLING_TEMPORAL}


def make_embed_request(**options: object) -> emb.EmbedRequest:
    """``make_embed_request(text="a fox")``: exactly one of text, image, video, video_uri, job_id."""
    inputs = [k for k in ("text", "image", "video", "video_uri", "job_id") if options.get(k) is not None]
    if len(inputs) != 1:
        raise ValueError("pass exactly one of text, image, video, video_uri or job_id")
    request = emb.EmbedRequest()
    for name, value in options.items():
        if value is None:
            continue
        if name == "pooling":
            if value not in POOLINGS:
                raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
            request.pooling = POOLINGS[str(value)]
        else:
            setattr(request, name, value)
    return request
