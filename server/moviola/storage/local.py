"""Local-disk storage returning ``file://`` URIs."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from moviola.errors import NotFound, NotInStorage
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

    def read(self, uri: str) -> bytes:
        """The bytes of ``<root>/<job id>.mp4`` that ``uri`` names, once ``..`` and links are resolved.

        >>> LocalStorage(Path("/srv/videos")).read("file:///etc/passwd")
        Traceback (most recent call last):
        moviola.errors.NotInStorage: file:///etc/passwd is not a video of this server's storage
        """
        path = file_path(uri)
        if path is None or path.parent != self.root or path.suffix != ".mp4" or not _SAFE_ID.match(path.stem):
            raise NotInStorage(f"{uri} is not a video of this server's storage")
        try:
            # O_NOFOLLOW: a link put in place of the file after the check above is refused, not followed.
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as file:
                return file.read()
        except FileNotFoundError as exc:
            raise NotFound(f"{uri}: the video is gone (deleted or expired)") from exc
        except OSError as exc:  # a link or a folder where the video should be
            raise NotInStorage(
                f"{uri} is not a readable video of this server's storage ({exc.strerror})"
            ) from exc
