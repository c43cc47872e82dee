"""The storage interface: put a finished video and its images, read them back, link to them, expire them.

A stored video is named by the URI ``put`` returned (``file://...`` or ``s3://...``); its poster
and its spritesheet sit beside it (a video stored before spritesheets existed has none). Every
method takes such a URI and refuses any other (``NotInStorage``), so a job record that names a
foreign file never makes the server read it. All methods block: call them off the event loop.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

#: Most bytes one chunk of a streamed download holds (DownloadVideo's limit).
CHUNK_BYTES = 1024 * 1024
#: One folder or file name of an object's key: no dot first (no ``..``, no hidden files), no separators.
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def object_key(*parts: str) -> str:
    """The key of a small object beside the videos (``characters/acme/char_1.json``); ValueError if unsafe.

    >>> object_key("characters", "..", "x.json")
    Traceback (most recent call last):
    ValueError: unsafe object key part '..'
    """
    for part in parts:
        if not _KEY_PART.match(part):
            raise ValueError(f"unsafe object key part {part!r}")
    return "/".join(parts)


class Variant(enum.Enum):
    VIDEO = "video"
    THUMBNAIL = "thumbnail"
    SPRITESHEET = "spritesheet"


@dataclass(frozen=True)
class StoredVideo:
    uri: str
    size_bytes: int
    thumbnail_uri: str = ""


@dataclass(frozen=True)
class Link:
    """A URL that works from anywhere without credentials, until ``expires_at`` (Unix seconds)."""

    url: str
    expires_at: float


@dataclass(frozen=True)
class Download:
    """An open stored file: its size, and its bytes in chunks of at most ``CHUNK_BYTES``."""

    size_bytes: int
    chunks: Generator[bytes]


class Storage(Protocol):
    #: ``file:///...`` or ``s3://BUCKET/PREFIX``: where this storage keeps its files (for logs and errors).
    @property
    def location(self) -> str: ...

    def check(self) -> None:
        """Raise ``Unavailable`` (with what to fix) when the storage cannot be written; called at start-up."""

    def put(self, job_id: str, video: bytes, thumbnail: bytes, spritesheet: bytes = b"") -> StoredVideo:
        """Store the video of ``job_id``, its poster and its spritesheet (none when empty), each whole or
        not at all, the video last; repeating replaces them."""

    def read(self, uri: str, variant: Variant = Variant.VIDEO) -> bytes:
        """The whole file: the video at ``uri``, its poster or its spritesheet.

        Raises ``NotInStorage`` for a URI this storage did not write, whatever it names, and
        ``NotFound`` when the file is gone.
        """

    def open(self, uri: str, variant: Variant = Variant.VIDEO) -> Download:
        """The file in chunks (bounded memory for any size); the same errors as ``read``, raised here."""

    def link(self, uri: str, variant: Variant, ttl: float) -> Link | None:
        """A link that works from anywhere for ``ttl`` seconds; None where the storage has none (local disk)."""

    def delete(self, uri: str) -> None:
        """Delete the video at ``uri``, its poster and its spritesheet (gone already is fine)."""

    def delete_before(self, cutoff: float) -> int:
        """Delete every video (and its images) stored before ``cutoff`` (Unix seconds); how many videos."""

    # Small objects other than videos (characters), in folders under the same root, never swept by
    # ``delete_before``; ``key`` is made by ``object_key``.

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` at ``key``, whole or not at all; repeating replaces it."""

    def read_object(self, key: str) -> bytes:
        """The object at ``key``; ``NotFound`` when there is none."""

    def delete_object(self, key: str) -> None:
        """Delete the object at ``key`` (gone already is fine)."""
