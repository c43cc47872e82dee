"""The routes of ``/v1/videos/characters``: each translates HTTP to ``characters.Characters`` and back.

POST   /v1/videos/characters                  create: multipart ``name`` and ``video`` (the SDK's
                                               ``videos.create_character``)
GET    /v1/videos/characters/{character_id}   the SDK's ``videos.get_character``
DELETE /v1/videos/characters/{character_id}   Moviola's: delete it and its stored image

A character is a reference image taken from the video; a create request names it with the
extension field ``character_id`` (``rest/videos.py``), and the image conditions image-to-video.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from moviola.auth import caller as callers
from moviola.characters import Character
from moviola.errors import InvalidRequest
from moviola.rest import openapi
from moviola.service import JobService
from moviola.validation import MAX_VIDEO_BYTES


def shown(character: Character) -> dict[str, Any]:
    """The character object the ``openai`` SDK parses, with Moviola's extension fields after it."""
    return {
        "id": character.id,
        "object": "character",
        "created_at": int(character.created_at),
        "name": character.name,
        # Moviola's own: the reference image's size.
        "width": character.width,
        "height": character.height,
    }


async def _form(request: Request) -> tuple[str, bytes]:
    """``name`` and the ``video`` file (at most one byte over the limit is read: enough to refuse it)."""
    try:
        form = await request.form(max_files=1, max_fields=8)
    except HTTPException as exc:  # starlette's multipart errors: a second file, a malformed body
        raise InvalidRequest("video", f"could not be read from the form ({exc.detail})") from None
    name, video = "", b""
    for field, value in form.multi_items():
        if isinstance(value, UploadFile):
            if field != "video":
                raise InvalidRequest(field, "only video may be a file")
            video = await value.read(MAX_VIDEO_BYTES + 1)
        elif field == "name":
            name = value
        else:
            raise InvalidRequest(field, "is not a field of a character request (name, video)")
    if not video:
        raise InvalidRequest("video", "is required: a video file (MP4, MOV, WebM)")
    return name, video


class CharacterRoutes:
    """Each a translation to the job service's ``characters`` and back."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    async def create(self, request: Request) -> dict[str, Any]:
        name, video = await _form(request)
        return shown(await self.service.characters.create(name, video, callers.current()))

    async def retrieve(self, character_id: str) -> dict[str, Any]:
        return shown(await self.service.characters.get(character_id, callers.current()))

    async def delete(self, character_id: str) -> dict[str, Any]:
        await self.service.characters.delete(character_id, callers.current())
        return {"id": character_id, "object": "character.deleted", "deleted": True}


def add_routes(app: FastAPI, service: JobService) -> None:
    """The character routes; added before ``/v1/videos/{video_id}/...``, so that they match first."""
    routes = CharacterRoutes(service)
    one = "/v1/videos/characters/{character_id}"
    app.add_api_route(
        "/v1/videos/characters",
        routes.create,
        methods=["POST"],
        **openapi.declared("POST", "/v1/videos/characters"),
    )
    app.add_api_route(one, routes.retrieve, methods=["GET"], **openapi.declared("GET", one))
    app.add_api_route(one, routes.delete, methods=["DELETE"], **openapi.declared("DELETE", one))
