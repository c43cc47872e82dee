"""Local-disk storage returning ``file://`` URIs."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from moviola.storage.base import StoredVideo

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def file_path(uri: str) -> Path | None:
    """The absolute, resolved path a ``file://`` URI on this host names; None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path)).resolve()


class LocalStorage:
    """Videos as ``<root>/<job id>.mp4``.

    A video is written to a temporary file in the same folder, flushed to disk
    and renamed into place, so a reader never sees a half-written file and a
    crash leaves at most a stray temporary file, never a truncated video.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, job_id: str) -> Path:
        if not _SAFE_ID.match(job_id):
            raise ValueError(f"unsafe job id {job_id!r}")
        return self.root / f"{job_id}.mp4"

    def put(self, job_id: str, data: bytes) -> StoredVideo:
        target = self.path_for(job_id)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{job_id}.", suffix=".part", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        return StoredVideo(uri=target.as_uri(), size_bytes=len(data))

    def open(self, uri: str) -> bytes:
        path = file_path(uri)
        if path is None or path.parent != self.root:
            raise ValueError(f"{uri} is not a video of this storage")
        return path.read_bytes()
