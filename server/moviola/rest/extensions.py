"""``POST /v1/videos/extensions``: the SDK's ``videos.extend(video=..., prompt=..., seconds=...)``.

The video to extend is an uploaded file (what the SDK sends), or one of the caller's completed
videos by id: ``{"video": {"id": ...}}`` as JSON or the form field ``video[id]``. The new video is
that video (an upload: its last window, at the model's nearest size), then ``seconds`` more
made from ``prompt`` (``JobService.extend``, ``extend_upload``); by id its object says
``extended_from_video_id``. ``model`` (``extra_body``) picks the model for an upload.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from moviola.auth import caller as callers
from moviola.errors import InvalidRequest
from moviola.rest import openapi, videos
from moviola.service import JobService, JobView
from moviola.validation import MAX_VIDEO_BYTES

KNOWN = frozenset({"prompt", "seconds", "video", "model"})


async def read_fields(request: Request) -> tuple[dict[str, Any], bytes]:
    """The fields, and the uploaded video (empty when the video is named by id)."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InvalidRequest("body", "is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("body", "must be a JSON object")
        video = body.get("video")
        return body | {"video": video.get("id") if isinstance(video, dict) else video}, b""
    try:
        form = await request.form(max_files=1, max_fields=8)
    except HTTPException as exc:
        raise InvalidRequest("video", f"could not be read from the form ({exc.detail})") from None
    fields: dict[str, Any] = {}
    upload = b""
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "video":
                raise InvalidRequest(name, "only video may be a file")
            upload = await value.read(MAX_VIDEO_BYTES + 1)
            fields["video"] = ""
        else:
            fields["video" if name == "video[id]" else name] = value
    return fields, upload


class ExtensionRoutes:
    def __init__(self, service: JobService) -> None:
        self.service = service

    async def extend(self, request: Request) -> JSONResponse:
        fields, upload = await read_fields(request)
        unknown = sorted(set(fields) - KNOWN)
        if unknown:
            raise InvalidRequest(unknown[0], "is not a field of an extension (prompt, seconds, video, model)")
        video, prompt, seconds = (
            fields.get("video"),
            str(fields.get("prompt", "")),
            str(fields.get("seconds") or ""),
        )
        key, caller = request.headers.get("idempotency-key", ""), callers.current()
        if upload:
            model = str(fields.get("model") or "")
            job, _ = await self.service.extend_upload(
                upload, prompt, seconds, model=model, idempotency_key=key, caller=caller
            )
        elif isinstance(video, str) and video:
            if fields.get("model"):
                raise InvalidRequest(
                    "model", "an extension by id runs on the model that made the video (or its partner)"
                )
            job, _ = await self.service.extend(video, prompt, seconds, idempotency_key=key, caller=caller)
        else:
            raise InvalidRequest("video", 'is required: a video file, or {"id": ID} of a completed video')
        return JSONResponse(shown(job), headers={"openai-poll-after-ms": str(videos.POLL_AFTER_MS)})


def shown(job: JobView) -> dict[str, Any]:
    return videos.video(job.record, job.links)


def add_routes(app: FastAPI, service: JobService) -> None:
    app.add_api_route(
        "/v1/videos/extensions",
        ExtensionRoutes(service).extend,
        methods=["POST"],
        **openapi.declared("POST", "/v1/videos/extensions"),
    )
