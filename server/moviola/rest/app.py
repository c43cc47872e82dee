"""The routes of ``/v1/videos``: each translates HTTP to the job service and back, nothing more.

POST   /v1/videos                      create (multipart form as the SDK sends it, or JSON)
GET    /v1/videos                      list: after, limit, order
GET    /v1/videos/{id}                 retrieve; ``openai-poll-after-ms`` while unfinished
DELETE /v1/videos/{id}                 delete a finished video
GET    /v1/videos/{id}/content         download: variant=video|thumbnail|spritesheet
POST   /v1/videos/{id}/remix           the same request with a new prompt
POST   /v1/videos/{id}/cancel          Moviola's: cancel
GET    /v1/videos/{id}/events          Moviola's: Server-Sent Events, resumable with Last-Event-ID
GET    /v1/models                      the served models and their aliases, as OpenAI lists models
/v1/videos/characters                  create, get, delete: ``rest/characters.py``
POST   /v1/videos/extensions           extend a completed video: ``rest/extensions.py``
POST   /v1/videos/edits                edit a video with a new prompt: ``rest/edits.py``
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from google.protobuf import json_format
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

from moviola import messages
from moviola.auth import caller as callers
from moviola.auth.caller import Caller
from moviola.auth.keys import AuthFile
from moviola.errors import InvalidRequest
from moviola.fleet import Fleet
from moviola.rest import admin, characters, edits, errors, extensions, models, openapi, sse, videos
from moviola.rest import search as rest_search
from moviola.rest.auth import BearerAuth
from moviola.rest.console import Console
from moviola.rest.limits import BodyLimit
from moviola.rest.videos import POLL_AFTER_MS
from moviola.search.service import NoSearch, Searching
from moviola.service import JobService, JobView
from moviola.storage.base import Variant

#: The largest form field that is not a file (an ``input_reference[image_url]`` data URL is one).
MAX_IMAGE_BYTES = 16 * 1024 * 1024
#: ``variant``'s values in the OpenAPI document: the files a video is stored with.
VARIANTS = Query(json_schema_extra={"enum": [variant.value for variant in Variant]})


async def _fields(request: Request) -> tuple[dict[str, Any], bytes]:
    """A create request's fields and its ``input_reference`` image: multipart, urlencoded or JSON.

    The image is one uploaded file, or OpenAI's reference object (``videos.reference_image``): in JSON
    ``{"image_url": DATA_URL}``, in a form ``input_reference[image_url]``.
    """
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InvalidRequest("body", "is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("body", "must be a JSON object")
        return body, videos.reference_image(body.pop("input_reference", None))
    return await _form_fields(request)


async def _form_fields(request: Request) -> tuple[dict[str, Any], bytes]:
    form = await request.form(max_part_size=MAX_IMAGE_BYTES)
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    reference: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "input_reference":
                raise InvalidRequest(name, "only input_reference may be a file")
            images.append(await value.read())
        else:
            _text_field(fields, reference, name, value)
    if reference:
        images.append(videos.reference_image(reference))
    if len(images) > 1:
        raise InvalidRequest("input_reference", f"takes one image; this request has {len(images)}")
    if images and not images[0]:
        raise InvalidRequest("input_reference", "is empty")
    return fields, images[0] if images else b""


def _text_field(fields: dict[str, Any], reference: dict[str, str], name: str, value: str) -> None:
    """A form field that is not a file, into ``fields`` (or, an image reference's, ``reference``)."""
    if name.startswith("loras[]"):
        _nested_lora(fields, name, value)
    elif name == "webhook_events[]":  # the openai SDK's form encoding of a list
        _listed(fields, "webhook_events", value)
    elif name.partition("[")[0] == "input_reference":
        reference[name.removeprefix("input_reference").strip("[]")] = value
    else:
        fields[name] = value


def _listed(fields: dict[str, Any], name: str, value: str) -> None:
    items = fields.setdefault(name, [])
    if not isinstance(items, list):
        raise InvalidRequest(name, "give it as a list or as one comma-separated string, not both")
    items.append(value)


def _nested_lora(fields: dict[str, Any], name: str, value: str) -> None:
    """The openai SDK's form encoding of ``extra_body={"loras": [{"name": ..., "scale": ...}]}``:
    ``loras[][name]``, ``loras[][scale]``, in order; a field the last adapter has already starts the next."""
    key = name.removeprefix("loras[]").strip("[]")
    if key not in ("name", "scale"):
        raise InvalidRequest("loras", f"unknown adapter field {key!r} (name, scale)")
    items = fields.setdefault("loras", [])
    if not isinstance(items, list):
        raise InvalidRequest("loras", "give it as JSON or as loras[][name]/loras[][scale], not both")
    if not items or key in items[-1]:
        items.append({})
    try:
        items[-1][key] = float(value) if key == "scale" else value
    except ValueError:
        raise InvalidRequest(f"loras[{len(items) - 1}].scale", "must be a number") from None


class Routes:
    """The routes' behaviour, each a translation to the job service and back."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        #: Seconds of silence on an events stream before a keep-alive comment.
        self.keepalive = sse.KEEPALIVE

    @staticmethod
    def _created(job: JobView) -> JSONResponse:
        return JSONResponse(_shown(job), headers={"openai-poll-after-ms": str(POLL_AFTER_MS)})

    async def create(self, request: Request) -> JSONResponse:
        fields, image = await _fields(request)
        draft = videos.draft_of(fields, image)
        key = request.headers.get("idempotency-key", "")
        job, _ = await self.service.submit(replace(draft, idempotency_key=key), caller=callers.current())
        return self._created(job)

    async def list_videos(
        self, after: str = "", limit: int = 20, order: Literal["asc", "desc"] = "desc"
    ) -> dict[str, Any]:
        jobs, more = await self.service.list_after(
            callers.current(), after=after, limit=limit, newest_first=order == "desc"
        )
        data = [_shown(j) for j in jobs]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}

    async def retrieve(self, video_id: str) -> JSONResponse:
        job = await self.service.show(video_id, callers.current())
        headers = {} if job.record.state.terminal else {"openai-poll-after-ms": str(POLL_AFTER_MS)}
        return JSONResponse(_shown(job), headers=headers)

    async def delete(self, video_id: str) -> dict[str, Any]:
        await self.service.delete(video_id, callers.current())
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    async def content(self, video_id: str, variant: Annotated[str, VARIANTS] = "video") -> Response:
        chosen = {
            "video": Variant.VIDEO,
            "thumbnail": Variant.THUMBNAIL,
            "spritesheet": Variant.SPRITESHEET,
        }.get(variant)
        if chosen is None:
            raise InvalidRequest("variant", "must be video, thumbnail or spritesheet")
        download = await self.service.download(video_id, chosen, callers.current())
        headers = {"content-length": str(download.size_bytes)}
        return StreamingResponse(download.chunks, media_type=download.mime_type, headers=headers)

    async def remix(self, video_id: str, request: Request) -> JSONResponse:
        fields, _ = await _fields(request)
        job, _ = await self.service.remix(
            video_id,
            str(fields.get("prompt", "")),
            idempotency_key=request.headers.get("idempotency-key", ""),
            caller=callers.current(),
        )
        return self._created(job)

    async def models(self) -> dict[str, Any]:
        """OpenAI's model list: every served model and every alias (``sora-2``), each naming the model it runs."""
        data = [
            entry
            for status in await self.service.models(callers.current())
            for entry in models.entries(status)
        ]
        return {"object": "list", "data": data}

    async def cancel(self, video_id: str) -> dict[str, Any]:
        return _shown(await self.service.cancel(video_id, callers.current()))

    async def events(self, video_id: str, request: Request, after: int = 0) -> StreamingResponse:
        last = request.headers.get("last-event-id", "")
        if last:
            if not last.isdigit():
                raise InvalidRequest("Last-Event-ID", "must be the id of an event this stream sent")
            after = int(last)
        caller = callers.current()
        await self.service.get(video_id, caller)  # NOT_FOUND now, not inside the stream
        return StreamingResponse(
            self._lines(video_id, after, caller),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    async def _lines(self, video_id: str, after: int, caller: Caller) -> AsyncIterator[bytes]:
        """WatchJob's events as SSE: ``id`` the sequence number, ``event`` its kind, ``data`` its protobuf JSON
        (a progress event's preview is ``progress.preview.image``, base64); comments while idle."""
        async for view in sse.with_keepalive(
            self.service.watch(video_id, after, caller=caller), self.keepalive
        ):
            if view is None:
                yield sse.COMMENT
                continue
            message = messages.event(view.event, view.links)
            data = json_format.MessageToJson(message, indent=None)
            yield sse.frame(view.event.sequence, str(message.WhichOneof("kind")), data)


def _shown(job: JobView) -> dict[str, Any]:
    return videos.video(job.record, job.links)


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


def build(
    service: JobService,
    keys: AuthFile | None,
    *,
    search: Searching | None = None,
    fleet: Fleet | None = None,
    console: bool = False,
) -> tuple[Any, FastAPI]:
    """The ASGI app (the routes behind the bearer-key middleware, and the browser console's files in
    front of it with ``console``), and the FastAPI app inside it."""
    app = FastAPI(title="Moviola videos", version="1", docs_url=None, redoc_url=None)
    errors.install(app)
    openapi.install(app)
    app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    routes = Routes(service)
    characters.add_routes(app, service)  # before /v1/videos/{video_id}/...: they match first
    rest_search.add_routes(app, search or NoSearch())
    admin.add_routes(app, service, fleet)
    extensions.add_routes(app, service)
    edits.add_routes(app, service)
    for path, method, endpoint in (
        ("/v1/videos", "POST", routes.create),
        ("/v1/videos", "GET", routes.list_videos),
        ("/v1/videos/{video_id}", "GET", routes.retrieve),
        ("/v1/videos/{video_id}", "DELETE", routes.delete),
        ("/v1/videos/{video_id}/content", "GET", routes.content),
        ("/v1/videos/{video_id}/remix", "POST", routes.remix),
        ("/v1/videos/{video_id}/cancel", "POST", routes.cancel),
        ("/v1/videos/{video_id}/events", "GET", routes.events),
        ("/v1/models", "GET", routes.models),
    ):
        app.add_api_route(path, endpoint, methods=[method], **openapi.declared(method, path))
    served = BearerAuth(BodyLimit(app), keys)
    return (Console(served) if console else served), app
