"""``POST /v1/videos/edits``: the SDK's ``videos.edit(video=..., prompt=...)``.

The video to edit is an uploaded file (what the SDK sends), or one of the caller's completed
videos by id: ``{"video": {"id": ...}}`` as JSON or the form field ``video[id]``. The new video is
that video made again from ``prompt`` by the model's video-to-video pipeline (``JobService.edit``,
``edit_upload``): the same frames (an upload: its first window, at the model's nearest size), and
by id its object says ``edited_from_video_id``. Extensions (``extra_body``): ``strength`` (how far
from the video, 0 < s <= 1; the model's ``defaults.edit_strength``) and ``model`` (an upload's model).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from moviola.auth import caller as callers
from moviola.errors import InvalidRequest
from moviola.rest import openapi, videos
from moviola.rest.extensions import read_fields
from moviola.service import JobService

KNOWN = frozenset({"prompt", "video", "strength", "model"})


def _strength(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidRequest("strength", "must be a number greater than 0 and at most 1")
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest("strength", "must be a number greater than 0 and at most 1") from None
    if not math.isfinite(strength):
        raise InvalidRequest("strength", "must be a number greater than 0 and at most 1")
    return strength


class EditRoutes:
    def __init__(self, service: JobService) -> None:
        self.service = service

    async def edit(self, request: Request) -> JSONResponse:
        fields, upload = await read_fields(request)
        unknown = sorted(set(fields) - KNOWN)
        if unknown:
            raise InvalidRequest(unknown[0], "is not a field of an edit (prompt, video, strength, model)")
        video, prompt = fields.get("video"), str(fields.get("prompt", ""))
        strength = _strength(fields.get("strength"))
        key, caller = request.headers.get("idempotency-key", ""), callers.current()
        model = str(fields.get("model") or "")
        if upload:
            job, _ = await self.service.edit_upload(
                upload, prompt, strength, model=model, idempotency_key=key, caller=caller
            )
        elif isinstance(video, str) and video:
            if model:
                raise InvalidRequest("model", "an edit by id runs on the model that made the video")
            job, _ = await self.service.edit(video, prompt, strength, idempotency_key=key, caller=caller)
        else:
            raise InvalidRequest("video", 'is required: a video file, or {"id": ID} of a completed video')
        return JSONResponse(
            videos.video(job.record, job.links), headers={"openai-poll-after-ms": str(videos.POLL_AFTER_MS)}
        )


def add_routes(app: FastAPI, service: JobService) -> None:
    app.add_api_route(
        "/v1/videos/edits",
        EditRoutes(service).edit,
        methods=["POST"],
        **openapi.declared("POST", "/v1/videos/edits"),
    )
