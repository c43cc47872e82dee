"""The storage interface: put a finished video and its poster, read them back, link to them, expire them.

A stored video is named by the URI ``put`` returned (``file://...`` or ``s3://...``); its poster
sits beside it. Every method takes such a URI and refuses any other (``NotInStorage``), so a job
record that names a foreign file never makes the server read it. All methods block: call them
off the event loop.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

#: Most bytes one chunk of a streamed download holds (DownloadVideo's limit).
CHUNK_BYTES = 1024 * 1024


class Variant(enum.Enum):
    VIDEO = "video"
    THUMBNAIL = "thumbnail"


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

    def put(self, job_id: str, video: bytes, thumbnail: bytes) -> StoredVideo:
        """Store the video of ``job_id`` and its poster, each whole or not at all; repeating replaces them."""

    def read(self, uri: str, variant: Variant = Variant.VIDEO) -> bytes:
        """The whole file: the video at ``uri`` or its poster.

        Raises ``NotInStorage`` for a URI this storage did not write, whatever it names, and
        ``NotFound`` when the file is gone.
        """

    def open(self, uri: str, variant: Variant = Variant.VIDEO) -> Download:
        """The file in chunks (bounded memory for any size); the same errors as ``read``, raised here."""

    def link(self, uri: str, variant: Variant, ttl: float) -> Link | None:
        """A link that works from anywhere for ``ttl`` seconds; None where the storage has none (local disk)."""

    def delete(self, uri: str) -> None:
        """Delete the video at ``uri`` and its poster (gone already is fine)."""

    def delete_before(self, cutoff: float) -> int:
        """Delete every video (and poster) stored before ``cutoff`` (Unix seconds); how many videos."""
