"""Characters: a named reference image, taken from a caller's video, for image-to-video conditioning.

This is what Sora's ``videos.create_character`` becomes here, and no more: the uploaded video is
decoded at the door (``uploads.decode``), its sharpest frame among a few spread over it becomes a
PNG, and a video request that names the character (``character_id``) is conditioned on that image
exactly as if the caller had sent it as ``input_reference``. Nothing is trained; no identity is
learned; a model that takes no image cannot use a character.

Everything lives in the storage, under a folder per tenant, so the embedded server and every
gateway of a Redis deployment see the same characters with no other state:

    characters/<tenant>/<character id>.png     the reference image, written first
    characters/<tenant>/<character id>.json    the record; a character exists once it is written

(``_`` is the folder of the server without an auth file, whose tenant is empty; tenant names start
with a letter or digit). Another tenant's character is in another folder: ``NotFound``, as if absent.
Characters are kept until deleted (``--retention`` sweeps videos only).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import time
from dataclasses import dataclass

import numpy as np

from moviola.auth.caller import Caller
from moviola.errors import InvalidRequest, NotFound
from moviola.storage.base import Storage, object_key
from moviola.uploads import Picture, VideoLimits, decode
from moviola.validation import MAX_NAME_CHARS

FOLDER = "characters"
_ID = re.compile(r"^char_[0-9a-f]{32}$")
#: The reference image's longest side: above what any served model makes, so never the limit.
LONG_SIDE = 1280
#: Frames spread over the video from which the sharpest becomes the reference.
CANDIDATES = 8


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    created_at: float
    #: The reference image's size, and what it was taken from.
    width: int
    height: int
    source_frames: int
    source_seconds: float

    def encode(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "name": self.name,
                "created_at": self.created_at,
                "width": self.width,
                "height": self.height,
                "source_frames": self.source_frames,
                "source_seconds": self.source_seconds,
            }
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Character:
        raw = json.loads(data)
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            created_at=float(raw["created_at"]),
            width=int(raw["width"]),
            height=int(raw["height"]),
            source_frames=int(raw["source_frames"]),
            source_seconds=float(raw["source_seconds"]),
        )


#: The folder of an open server's characters (no auth file: no tenants).
OPEN_SERVER = "open-server"


def _key(caller: Caller, character_id: str, suffix: str) -> str:
    return object_key(FOLDER, caller.tenant or OPEN_SERVER, f"{character_id}{suffix}")


def _sharpest(samples: list[Picture]) -> Picture:
    """The frame with the most detail (mean squared luma gradient): the least motion blur."""

    def detail(picture: Picture) -> float:
        luma = picture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return float(np.mean(np.diff(luma, axis=0) ** 2) + np.mean(np.diff(luma, axis=1) ** 2))

    return max(samples, key=detail)


def _png(picture: Picture) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


class Characters:
    """Create, show and delete a tenant's characters; hand a video request a character's image."""

    def __init__(self, storage: Storage, limits: VideoLimits | None = None) -> None:
        self._storage = storage
        self._limits = limits or VideoLimits()

    async def create(self, name: str, video: bytes, caller: Caller) -> Character:
        """Decode ``video`` (``InvalidRequest`` naming ``video`` when unusable) and store its reference image."""
        if not name.strip():
            raise InvalidRequest("name", "must not be empty")
        if len(name) > MAX_NAME_CHARS:
            raise InvalidRequest("name", f"must be at most {MAX_NAME_CHARS} characters (got {len(name)})")
        decoded = await asyncio.to_thread(
            decode, video, keep=CANDIDATES, long_side=LONG_SIDE, limits=self._limits
        )
        picture = _sharpest(decoded.samples)
        image = await asyncio.to_thread(_png, picture)
        character = Character(
            id=f"char_{secrets.token_hex(16)}",
            name=name,
            created_at=time.time(),
            width=int(picture.shape[1]),
            height=int(picture.shape[0]),
            source_frames=decoded.frames,
            source_seconds=decoded.seconds,
        )
        await asyncio.to_thread(
            self._storage.put_object, _key(caller, character.id, ".png"), image, "image/png"
        )
        await asyncio.to_thread(
            self._storage.put_object,
            _key(caller, character.id, ".json"),
            character.encode(),
            "application/json",
        )
        return character

    async def get(self, character_id: str, caller: Caller) -> Character:
        """The caller's character; another tenant's is ``NotFound``, as if absent."""
        if not _ID.match(character_id):
            raise NotFound(f"character {character_id[:64]!r} not found")
        try:
            data = await asyncio.to_thread(self._storage.read_object, _key(caller, character_id, ".json"))
        except NotFound:
            raise NotFound(f"character {character_id!r} not found") from None
        return Character.decode(data)

    async def image(self, character_id: str, caller: Caller) -> bytes:
        """The character's reference image (PNG), for a video request's conditioning."""
        await self.get(character_id, caller)
        try:
            return await asyncio.to_thread(self._storage.read_object, _key(caller, character_id, ".png"))
        except NotFound:  # deleted between the two reads
            raise NotFound(f"character {character_id!r} not found") from None

    async def delete(self, character_id: str, caller: Caller) -> Character:
        """Forget the caller's character: its record first (it is gone at once), then its image."""
        character = await self.get(character_id, caller)
        await asyncio.to_thread(self._storage.delete_object, _key(caller, character_id, ".json"))
        await asyncio.to_thread(self._storage.delete_object, _key(caller, character_id, ".png"))
        return character
