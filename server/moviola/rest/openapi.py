"""What the OpenAPI document says about each route, beyond what FastAPI reads from its signature.

The routes read their bodies themselves (a multipart form as the SDK sends it, or JSON), so FastAPI
sees neither body nor response; this module declares them: the request bodies in both encodings,
the video object, the files a download returns, the events stream, and every error status a route
can answer, each with OpenAI's error body. ``scripts/openapi.py`` writes the document to
docs/openapi.json; a test checks it against what the server answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from moviola.rest import models, schemas
from moviola.rest.errors import STATUSES
from moviola.validation import DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENTS

ERROR = {"$ref": "#/components/schemas/Error"}
VIDEO = {"$ref": "#/components/schemas/Video"}

#: What each status means on this face (the Kind behind it: ``rest/errors.py``).
WHY = {
    400: "A field or parameter is invalid (``param`` names it), or the body cannot be parsed",
    401: "No valid API key (only where the server has an auth file)",
    403: "The key's tenant may not use what the request names",
    404: "No such video for this key's tenant",
    409: "The video is not in a state to do this (not finished, still running), or the server lacks "
    "what the request needs (a webhook secret)",
    413: "The request body is over the server's limit",
    429: "Rate limit or quota: retry after ``Retry-After`` seconds",
    500: "A bug: the server's log has the details",
    503: "The server cannot take it now (starting, draining, no worker for the model): retry later",
}
#: Every route may answer these.
ALWAYS = (400, 401, 500, 503)
_ID = (404,)
_SUBMITS = (403, 409, 413, 429)

_STRING = {"type": "string"}
_FIELDS: dict[str, Any] = {
    "prompt": {"type": "string", "description": "What the video shows."},
    "model": {
        "type": "string",
        "description": "A served model's id, family or alias (sora-2, sora-2-pro); the default when absent.",
    },
    "size": {"type": "string", "description": "WIDTHxHEIGHT in pixels, like 832x480.", "example": "832x480"},
    "seconds": {"type": "string", "description": "Length in seconds, like 4.", "example": "4"},
    "negative_prompt": _STRING,
    "seed": {"type": "integer", "minimum": 0},
    "steps": {"type": "integer", "minimum": 0, "description": "Inference steps; 0: the model's default."},
    "priority": {"type": "string", "enum": ["interactive", "batch"]},
    "max_wait": {"type": "number", "description": "Longest wait before the job starts, in seconds."},
    "allow_fallback": {"type": "boolean"},
    "webhook_url": {"type": "string", "description": "Where to POST the job's signed events."},
    "preview_every": {"type": "integer", "minimum": 0},
    "speed_profile": {"type": "string", "enum": ["exact", "fast", "turbo"]},
    "character_id": {
        "type": "string",
        "description": "A character whose reference image conditions the video.",
    },
}
_EVENTS = {"type": "string", "enum": list(WEBHOOK_EVENTS)}
_LORA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STRING, "scale": {"type": "number"}},
    "additionalProperties": False,
}
_REFERENCE = {
    "type": "object",
    "description": "OpenAI's reference object: image_url a base64 data URL (file_id is refused: no Files API).",
    "properties": {"image_url": _STRING, "file_id": _STRING},
    "additionalProperties": False,
}
CREATE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": _FIELDS
    | {
        "input_reference": {
            "type": "string",
            "format": "binary",
            "description": "One image (PNG, JPEG, WebP) to start from, on image-to-video models.",
        },
        "webhook_events": {
            "type": "string",
            "description": f"Comma-separated: {', '.join(WEBHOOK_EVENTS)} "
            f"(default {', '.join(DEFAULT_WEBHOOK_EVENTS)}).",
        },
        "loras": {
            "type": "string",
            "description": 'A JSON list like [{"name": "ink-wash", "scale": 0.8}] '
            "(or the SDK's loras[][name], loras[][scale] fields).",
        },
    },
}
CREATE_JSON: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": _FIELDS
    | {
        "input_reference": _REFERENCE,
        "webhook_events": {"type": "array", "items": _EVENTS},
        "loras": {"type": "array", "items": _LORA},
    },
    "additionalProperties": False,
}
REMIX: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {"prompt": _FIELDS["prompt"]},
}

_VIDEO_FILE = {"type": "string", "format": "binary", "description": "A video file: MP4, MOV, WebM."}
EXTEND_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["prompt", "seconds"],
    "properties": {
        "prompt": _FIELDS["prompt"],
        "seconds": {"type": "string", "description": "Seconds to add, like 4.", "example": "4"},
        "video": _VIDEO_FILE,
        "video[id]": {"type": "string", "description": "Instead of a file: a completed video's id."},
        "model": _FIELDS["model"],
    },
}
EXTEND_JSON: dict[str, Any] = {
    "type": "object",
    "required": ["prompt", "seconds", "video"],
    "properties": {
        "prompt": _FIELDS["prompt"],
        "seconds": EXTEND_FORM["properties"]["seconds"],
        "video": {"type": "object", "required": ["id"], "properties": {"id": _STRING}},
    },
    "additionalProperties": False,
}
_STRENGTH = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 1,
    "default": 0.7,
    "description": "Moviola's: how far the edit may stray from the video (the share of the steps run).",
}
EDIT_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": _FIELDS["prompt"],
        "video": _VIDEO_FILE,
        "video[id]": {"type": "string", "description": "Instead of a file: a completed video's id."},
        "strength": _STRENGTH,
        "model": _FIELDS["model"],
    },
}
EDIT_JSON: dict[str, Any] = {
    "type": "object",
    "required": ["prompt", "video"],
    "properties": {
        "prompt": _FIELDS["prompt"],
        "video": {"type": "object", "required": ["id"], "properties": {"id": _STRING}},
        "strength": _STRENGTH,
    },
    "additionalProperties": False,
}
CHARACTER_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["name", "video"],
    "properties": {"name": {"type": "string", "description": "What to call it."}, "video": _VIDEO_FILE},
}
_CHARACTER = {
    "type": "object",
    "required": ["id", "object", "created_at", "name"],
    "properties": {
        "id": _STRING,
        "object": {"const": "character"},
        "created_at": {"type": "integer"},
        "name": _STRING,
        "width": {"type": "integer"},
        "height": {"type": "integer"},
    },
}


def _form(form: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}}}


def _body(form: dict[str, Any], json: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}, "application/json": {"schema": json}},
        }
    }


def _ok(content: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": content}


_JSON_VIDEO = {"application/json": {"schema": VIDEO}}
_LIST = schemas.list_of(
    VIDEO,
    ("has_more",),
    first_id={"type": ["string", "null"]},
    last_id={"type": ["string", "null"]},
    has_more={"type": "boolean"},
)
_DELETED = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": _STRING, "object": {"const": "video.deleted"}, "deleted": {"type": "boolean"}},
}
_CHARACTER_DELETED = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": _STRING, "object": {"const": "character.deleted"}, "deleted": {"type": "boolean"}},
}
_FILE = {"schema": {"type": "string", "format": "binary"}}
#: (method, path): (the 200 response, the request body, the error statuses beyond ``ALWAYS``).
ROUTES: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], tuple[int, ...]]] = {
    ("POST", "/v1/videos"): (_ok(_JSON_VIDEO, "The queued video"), _body(CREATE_FORM, CREATE_JSON), _SUBMITS),
    ("GET", "/v1/videos"): (_ok({"application/json": {"schema": _LIST}}), {}, _ID),
    ("GET", "/v1/videos/{video_id}"): (_ok(_JSON_VIDEO), {}, _ID),
    ("DELETE", "/v1/videos/{video_id}"): (_ok({"application/json": {"schema": _DELETED}}), {}, (404, 409)),
    ("GET", "/v1/videos/{video_id}/content"): (
        _ok(
            {"video/mp4": _FILE, "image/jpeg": _FILE}, "The video (MP4), or its poster or spritesheet (JPEG)"
        ),
        {},
        (404, 409),
    ),
    ("POST", "/v1/videos/{video_id}/remix"): (
        _ok(_JSON_VIDEO, "The queued remix"),
        _body(REMIX, REMIX | {"additionalProperties": False}),
        (404, *_SUBMITS),
    ),
    ("POST", "/v1/videos/{video_id}/cancel"): (_ok(_JSON_VIDEO), {}, _ID),
    ("POST", "/v1/videos/extensions"): (
        _ok(_JSON_VIDEO, "The queued extension"),
        _body(EXTEND_FORM, EXTEND_JSON),
        (404, *_SUBMITS),
    ),
    ("POST", "/v1/videos/edits"): (
        _ok(_JSON_VIDEO, "The queued edit"),
        _body(EDIT_FORM, EDIT_JSON),
        (404, *_SUBMITS),
    ),
    ("POST", "/v1/videos/characters"): (
        _ok({"application/json": {"schema": _CHARACTER}}, "The character"),
        _form(CHARACTER_FORM),
        (413,),
    ),
    ("GET", "/v1/videos/characters/{character_id}"): (
        _ok({"application/json": {"schema": _CHARACTER}}),
        {},
        _ID,
    ),
    ("DELETE", "/v1/videos/characters/{character_id}"): (
        _ok({"application/json": {"schema": _CHARACTER_DELETED}}),
        {},
        _ID,
    ),
    ("GET", "/v1/models"): (_ok({"application/json": {"schema": models.SCHEMA}}), {}, ()),
    ("GET", "/v1/videos/{video_id}/events"): (
        _ok({"text/event-stream": {"schema": _STRING}}, "The job's events as Server-Sent Events"),
        {},
        _ID,
    ),
}


def declared(method: str, path: str) -> dict[str, Any]:
    """``add_api_route``'s arguments that document the route ``method path``: its responses and body."""
    return declare(*ROUTES.get((method, path), ({}, {}, (404, 409, 429))))


def json_ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    """A 200 response of JSON in ``schema``."""
    return _ok({"application/json": {"schema": schema}}, description)


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body in ``schema``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def declare(ok: dict[str, Any], body: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
    """``add_api_route``'s arguments for a route answering ``ok`` (or the errors of ``ALWAYS`` and
    ``statuses``) to ``body``; the routes of other modules (``rest/admin.py``) declare theirs with it."""
    responses: dict[int | str, dict[str, Any]] = {200: ok} if ok else {}
    for status in sorted({*ALWAYS, *statuses}):
        responses[status] = _ok({"application/json": {"schema": ERROR}}, WHY[status])
    # No schema of FastAPI's own for the 200 (the routes return dicts or responses), and no JSON body
    # declared beside a file or a stream.
    plain = (
        {}
        if "application/json" in ok.get("content", {"application/json": None})
        else {"response_class": Response}
    )
    return {"responses": responses, "openapi_extra": body or None, "response_model": None, **plain}


def install(app: FastAPI) -> None:
    """``app``'s document: FastAPI's, with the schemas above and without the 422 it never answers."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for method, operation in operations.items():
                    operation["responses"].pop("422", None)  # parameter errors are 400 here
                    if "400" not in operation["responses"]:  # a route added without ``declared``
                        extra = (404, 413) if method == "post" else (404,)
                        for status in sorted({*ALWAYS, *extra}):
                            operation["responses"][str(status)] = _ok(
                                {"application/json": {"schema": ERROR}}, WHY[status]
                            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas.update(Error=ERROR_SCHEMA, Video=VIDEO_SCHEMA)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]  # FastAPI's documented way to extend it


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": _STRING,
                "type": {"type": "string", "enum": sorted({kind for _, kind in STATUSES.values()})},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_NULLABLE_INT = {"type": ["integer", "null"]}
VIDEO_SCHEMA = {
    "type": "object",
    "description": "OpenAI's video object, with Moviola's fields after it.",
    "required": ["id", "object", "created_at", "status", "model", "progress", "seconds", "size"],
    "properties": {
        "id": _STRING,
        "object": {"const": "video"},
        "created_at": {"type": "integer"},
        "status": {"type": "string", "enum": ["queued", "in_progress", "completed", "failed"]},
        "model": _STRING,
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "prompt": _STRING,
        "seconds": _STRING,
        "size": _STRING,
        "completed_at": _NULLABLE_INT,
        "expires_at": _NULLABLE_INT,
        "error": {
            "type": ["object", "null"],
            "properties": {"code": _STRING, "message": _STRING},
        },
        "remixed_from_video_id": {"type": ["string", "null"]},
        "edited_from_video_id": {"type": ["string", "null"]},
        "queue_position": _NULLABLE_INT,
        "download_url": {"type": ["string", "null"]},
    },
}
