"""The storage interface: put a finished video, get back where it is; read back what it stored."""

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

    def read(self, uri: str) -> bytes:
        """The video at ``uri``, which must be one this storage wrote (the URI ``put`` returned).

        Raises ``NotInStorage`` for a URI anywhere else, whatever it names, and ``NotFound`` when
        the video is gone. Blocking: call it off the event loop.
        """
