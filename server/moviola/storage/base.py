"""The storage interface: put a finished video, get back where it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredVideo:
    uri: str
    size_bytes: int


class Storage(Protocol):
    def put(self, job_id: str, data: bytes) -> StoredVideo:
        """Store the video of ``job_id`` whole or not at all; repeating it replaces it."""

    def open(self, uri: str) -> bytes:
        """Read back a video this storage wrote."""
