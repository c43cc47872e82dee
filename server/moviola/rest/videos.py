"""The video object and its create request: OpenAI's fields to Moviola's, one validation for both faces.

``size`` (``"WxH"``; Sora's sizes map to the model's, ``sizes.py``) and ``seconds`` (``segments.py``: past one
window, a long video) are the draft's too; everything goes through ``validation.validate`` like a gRPC
request, so both faces give the same field errors. Extensions the SDK sends through
``extra_body``: ``priority``, ``seed``, ``steps``, ``negative_prompt``, ``max_wait``, ``allow_fallback``,
``webhook_url``/``webhook_events``, ``speed_profile``, ``preview_every`` (previews arrive on ``/videos/{id}/events``),
``loras`` (``[{"name": ..., "scale": ...}]``; a form field carries it as JSON) and ``character_id`` (a
character's reference image as the image to condition on: ``characters.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

from moviola.delivery import Links
from moviola.errors import InvalidRequest
from moviola.jobs import JobRecord, JobState, Priority, Progress
from moviola.validation import RequestDraft

#: How long the SDK's ``create_and_poll`` waits between polls of an unfinished video.
POLL_AFTER_MS = 500

STATUS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "in_progress",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "failed",  # OpenAI has no cancelled: failed, with error.code "cancelled"
}
#: Form fields Moviola reads; any other is refused by name (a typo is not silently dropped).
KNOWN = frozenset(
    {"model", "prompt", "size", "seconds", "negative_prompt", "seed", "steps", "priority", "max_wait"}
    | {"allow_fallback", "input_reference", "webhook_url", "webhook_events", "preview_every", "speed_profile"}
    | {"loras", "character_id"}
)


def _int(fields: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    text = fields.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(str(text))
    except ValueError:
        raise InvalidRequest(name, f"must be a whole number (got {str(text)[:32]!r})") from None
    if not low <= value <= high:
        raise InvalidRequest(name, f"must be between {low} and {high}")
    return value


def draft_of(fields: Mapping[str, Any], image: bytes) -> RequestDraft:
    """A create request's form (or JSON) fields as the draft the job service validates."""
    unknown = sorted(set(fields) - KNOWN)
    if unknown:
        raise InvalidRequest(
            unknown[0], f"is not a field of a video request (known: {', '.join(sorted(KNOWN))})"
        )
    priority = str(fields.get("priority") or "interactive").lower()
    if priority not in ("interactive", "batch"):
        raise InvalidRequest("priority", "must be interactive or batch")
    max_wait = fields.get("max_wait")
    try:
        wait = float(max_wait) if max_wait not in (None, "") else None
    except ValueError:
        raise InvalidRequest("max_wait", "must be a number of seconds") from None
    if wait is not None and not math.isfinite(wait):
        raise InvalidRequest("max_wait", "must be a number of seconds")
    seconds = fields.get("seconds")
    return RequestDraft(
        model=str(fields.get("model", "")),
        prompt=str(fields.get("prompt", "")),
        negative_prompt=str(fields.get("negative_prompt", "")),
        image=image,
        image_field="input_reference",
        size=str(fields.get("size") or ""),
        seconds="" if seconds is None else str(seconds),
        num_inference_steps=_int(fields, "steps", 0, 10_000) or 0,
        seed=_int(fields, "seed", 0, 2**63 - 1),
        priority=Priority[priority.upper()],
        max_wait=wait,
        allow_fallback=str(fields.get("allow_fallback", "")).lower() in ("1", "true", "yes"),
        webhook_url=str(fields.get("webhook_url", "")),
        webhook_events=_events(fields.get("webhook_events")),
        preview_every=_int(fields, "preview_every", 0, 10_000) or 0,
        speed_profile=str(fields.get("speed_profile") or "").lower(),
        loras=_loras(fields.get("loras")),
        character_id=str(fields.get("character_id") or ""),
    )


def reference_image(value: Any) -> bytes:
    """``input_reference`` as OpenAI's reference object, ``{"image_url": "data:image/png;base64,..."}``.

    A JSON body carries it so (a form, as ``input_reference[image_url]``). Moviola fetches no URL (a
    server that fetches what callers name opens its network to them) and has no Files API: ``image_url``
    must be a base64 data URL, and ``file_id`` is refused. None: no image.
    """
    if value is None:
        return b""
    if not isinstance(value, dict) or not value or set(value) - {"image_url", "file_id"}:
        raise InvalidRequest(
            "input_reference", 'must be an image file, or {"image_url": "data:image/png;base64,..."}'
        )
    if "file_id" in value:
        raise InvalidRequest(
            "input_reference",
            "file_id needs OpenAI's Files API, which Moviola does not have: upload the image as a file, "
            "or send it as a base64 data URL in image_url",
        )
    url = value["image_url"]
    header, comma, data = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        raise InvalidRequest(
            "input_reference",
            "image_url must be a base64 data URL (data:image/png;base64,...); Moviola fetches no URLs",
        )
    try:
        image = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise InvalidRequest("input_reference", "image_url's data is not valid base64") from None
    if not image:
        raise InvalidRequest("input_reference", "is empty")
    return image


def _loras(value: Any) -> tuple[tuple[str, float | None], ...]:
    """``loras``: a list of ``{"name", "scale"}`` objects (or names), or that list as JSON in a form field."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidRequest(
                "loras", 'must be a JSON list like [{"name": "ink-wash", "scale": 0.8}]'
            ) from None
    if not isinstance(value, list):
        raise InvalidRequest("loras", 'must be a list like [{"name": "ink-wash", "scale": 0.8}]')
    out: list[tuple[str, float | None]] = []
    for i, item in enumerate(value):
        item = {"name": item} if isinstance(item, str) else item
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or set(item) - {"name", "scale"}
        ):
            raise InvalidRequest(f"loras[{i}]", 'must be {"name": NAME, "scale": NUMBER} (scale optional)')
        scale = item.get("scale")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)):
            raise InvalidRequest(f"loras[{i}].scale", "must be a number")
        out.append((item["name"], None if scale is None else float(scale)))
    return tuple(out)


def _done(step: Progress) -> float:
    """The share of the job's steps done: of all its segments' steps, for a long video."""
    segments, segment = max(1, step.total_segments), max(1, step.segment)
    return ((segment - 1) * step.total_steps + step.step) / (segments * step.total_steps)


def _events(value: Any) -> tuple[str, ...]:
    """``webhook_events`` as a JSON list or a comma-separated form field."""
    if value in (None, ""):
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def video(record: JobRecord, links: Links | None) -> dict[str, Any]:
    """The video object the ``openai`` SDK parses, with Moviola's extension fields after it."""
    request = record.request
    progress = 0
    if record.state is JobState.COMPLETED:
        progress = 100
    elif record.progress is not None and record.progress.total_steps:
        progress = min(99, math.floor(100 * _done(record.progress)))
    error = None
    if record.failure is not None:
        error = {"code": record.failure.code.value, "message": record.failure.message}
    elif record.cancellation is not None:
        error = {"code": "cancelled", "message": record.cancellation.reason}
    return {
        "id": record.id,
        "object": "video",
        "created_at": int(record.created_at),
        "status": STATUS[record.state],
        "model": request.requested_model or request.model,
        "progress": progress,
        "prompt": request.prompt,
        "seconds": f"{request.num_frames / request.fps:g}",
        "size": f"{request.width}x{request.height}",
        "completed_at": int(record.finished_at)
        if record.state is JobState.COMPLETED and record.finished_at
        else None,
        "expires_at": int(links.expires_at) if links is not None and links.expires_at else None,
        "error": error,
        "remixed_from_video_id": request.remixed_from or None,
        # Moviola's own (Sora's video object has no field for it): the video an extension continues.
        "extended_from_video_id": request.extended_from or None,
        # Moviola's own: the video an edit remade (by id; None for an uploaded one), and how far from it.
        "edited_from_video_id": request.edited_from or None,
        "edit_strength": request.strength if request.edit_from else None,
        # Moviola's own.
        "moviola_model": request.model,
        "queue_position": record.queue_position,
        "priority": request.priority.name.lower(),
        "seed": request.seed,
        "steps": request.num_inference_steps,
        "speed_profile": request.speed_profile or None,
        "loras": [{"name": lora.name, "scale": lora.scale} for lora in request.loras],
        "num_frames": request.num_frames,
        "fps": request.fps,
        "download_url": links.video_url if links is not None and links.video_url else None,
    }
