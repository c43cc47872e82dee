"""Local-disk storage returning ``file://`` URIs: ``<root>/<job id>.mp4``, its poster ``<job id>.jpg``
and its spritesheet ``<job id>.spritesheet.jpg`` (a job id has no dot: no name is another's)."""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from moviola.errors import NotFound, NotInStorage, Unavailable
from moviola.storage.base import CHUNK_BYTES, Download, Link, StoredVideo, Variant, object_key
from moviola.storage.durable import write_files

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
SUFFIX = {Variant.VIDEO: ".mp4", Variant.THUMBNAIL: ".jpg", Variant.SPRITESHEET: ".spritesheet.jpg"}


def file_path(uri: str) -> Path | None:
    """The absolute, resolved path a ``file://`` URI on this host names; None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path)).resolve()


class LocalStorage:
    """Files in one folder, written as ``durable.write_files`` writes them.

    A reader never sees a half-written file, and a crash leaves at most a stray temporary file,
    never a truncated video. There are no links: callers elsewhere use DownloadVideo.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def location(self) -> str:
        return self.root.as_uri()

    def check(self) -> None:
        """The folder (or, before the first video, the nearest folder above it) must be writable."""
        existing = next(folder for folder in (self.root, *self.root.parents) if folder.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise Unavailable(f"cannot write videos to {self.root}: {existing} is not a writable folder")

    def path_for(self, job_id: str, variant: Variant = Variant.VIDEO) -> Path:
        if not _SAFE_ID.match(job_id):
            raise ValueError(f"unsafe job id {job_id!r}")
        return self.root / f"{job_id}{SUFFIX[variant]}"

    def put(self, job_id: str, video: bytes, thumbnail: bytes, spritesheet: bytes = b"") -> StoredVideo:
        self.root.mkdir(parents=True, exist_ok=True)
        poster, target = self.path_for(job_id, Variant.THUMBNAIL), self.path_for(job_id)
        files = [(poster, thumbnail)]  # first: a video that exists always has its images
        if spritesheet:
            files.append((self.path_for(job_id, Variant.SPRITESHEET), spritesheet))
        write_files(self.root, [*files, (target, video)])
        return StoredVideo(uri=target.as_uri(), size_bytes=len(video), thumbnail_uri=poster.as_uri())

    def _path(self, uri: str, variant: Variant) -> Path:
        """The file ``uri`` (a video of this storage, once ``..`` and links are resolved) names for ``variant``.

        >>> LocalStorage(Path("/srv/videos"))._path("file:///etc/passwd", Variant.VIDEO)
        Traceback (most recent call last):
        moviola.errors.NotInStorage: file:///etc/passwd is not a video of this server's storage
        """
        path = file_path(uri)
        if path is None or path.parent != self.root or path.suffix != ".mp4" or not _SAFE_ID.match(path.stem):
            raise NotInStorage(f"{uri} is not a video of this server's storage")
        return path.with_name(f"{path.stem}{SUFFIX[variant]}")

    def _open(self, uri: str, variant: Variant) -> BinaryIO:
        path = self._path(uri, variant)
        try:
            # O_NOFOLLOW: a link put in place of the file after the check above is refused, not followed.
            return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"{uri}: the {variant.value} is gone (deleted or expired)") from exc
        except OSError as exc:  # a link or a folder where the file should be
            raise NotInStorage(
                f"{uri} is not a readable video of this server's storage ({exc.strerror})"
            ) from exc

    def read(self, uri: str, variant: Variant = Variant.VIDEO) -> bytes:
        with self._open(uri, variant) as file:
            return file.read()

    def open(self, uri: str, variant: Variant = Variant.VIDEO) -> Download:
        file = self._open(uri, variant)
        size = os.fstat(file.fileno()).st_size

        def chunks() -> Generator[bytes]:
            with file:
                while chunk := file.read(CHUNK_BYTES):
                    yield chunk

        return Download(size, chunks())

    def link(self, uri: str, variant: Variant, ttl: float) -> Link | None:
        return None  # a path on this machine is no link for anyone else: DownloadVideo serves the file

    def delete(self, uri: str) -> None:
        for variant in Variant:
            self._path(uri, variant).unlink(missing_ok=True)

    def delete_before(self, cutoff: float) -> int:
        deleted = 0
        for video in self.root.glob("*.mp4"):
            try:
                if video.stat().st_mtime < cutoff:
                    self.delete(video.as_uri())
                    deleted += 1
            except (FileNotFoundError, NotInStorage):  # deleted meanwhile, or not one of ours
                continue
        return deleted

    def _object_path(self, key: str) -> Path:
        path = (self.root / object_key(*key.split("/"))).resolve()
        if not path.is_relative_to(self.root):  # a folder on the way is a link out of the storage
            raise NotInStorage(f"{key} is not an object of this server's storage")
        return path

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        path = self._object_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_files(path.parent, [(path, data)])

    def read_object(self, key: str) -> bytes:
        try:
            with os.fdopen(os.open(self._object_path(key), os.O_RDONLY | os.O_NOFOLLOW), "rb") as file:
                return file.read()
        except FileNotFoundError as exc:
            raise NotFound(f"{key} is not in the storage") from exc

    def delete_object(self, key: str) -> None:
        self._object_path(key).unlink(missing_ok=True)
