"""Handing finished videos to callers: fresh links, chunked downloads, and retention.

A completed job's files are named by storage URIs (``file://`` or ``s3://``), which a caller on
another machine cannot open. ``Delivery`` turns them into what a caller can use: a presigned link
made afresh each time a job is shown (so an expired link is renewed by asking again), or the
bytes themselves in chunks (DownloadVideo, for every storage). With ``--retention`` a job's files
are deleted that long after it completed, and the job says its video expired instead of handing
out a broken link.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Protocol

from moviola.errors import FailedPrecondition, NotFound, NotInStorage
from moviola.frames import Frames
from moviola.jobs import Completed, JobRecord, JobState
from moviola.mp4 import POSTER_MIME_TYPE, encode_mp4, encode_poster
from moviola.settings import StorageSettings
from moviola.storage.base import Storage, Variant

log = logging.getLogger(__name__)

#: Seconds between sweeps that delete expired files.
SWEEP_INTERVAL = 60.0
#: Seconds past the retention before a file is deleted, at most (longer than any upload takes).
SWEEP_MARGIN = 120.0


@dataclass(frozen=True)
class Links:
    """What a completed job shows besides its storage URIs."""

    video_url: str = ""
    thumbnail_url: str = ""
    #: When the two links stop working (Unix seconds); None without links.
    url_expires_at: float | None = None
    #: When the files are deleted; None: kept.
    expires_at: float | None = None
    expired: bool = False


@dataclass(frozen=True)
class FileDownload:
    size_bytes: int
    mime_type: str
    chunks: AsyncIterator[bytes]


class Forgetting(Protocol):
    """What else knows a job's video and must forget it with the files (the search index)."""

    async def forget(self, job_ids: list[str]) -> None: ...

    async def forget_before(self, created_before: float) -> int: ...


class Delivery:
    def __init__(self, storage: Storage, settings: StorageSettings, index: Forgetting | None = None) -> None:
        self.storage = storage
        self.url_ttl = settings.url_ttl
        self.retention = settings.video_retention
        self.index = index

    def expires_at(self, finished_at: float | None) -> float | None:
        if self.retention is None or finished_at is None:
            return None
        return finished_at + self.retention

    def links(self, result: Completed, finished_at: float | None) -> Links:
        """Fresh links to a completed job's video and poster (none once expired, none for local disk).

        The spritesheet has no link (nor has OpenAI's video object): callers download it.
        """
        expires = self.expires_at(finished_at)
        if expires is not None and expires <= time.time():
            return Links(expires_at=expires, expired=True)
        try:
            video = self.storage.link(result.video_uri, Variant.VIDEO, self.url_ttl)
            poster = (
                self.storage.link(result.video_uri, Variant.THUMBNAIL, self.url_ttl)
                if video is not None and result.thumbnail_uri
                else None
            )
        except NotInStorage:  # stored elsewhere (a worker with other storage): no link, never a failed call
            log.warning(
                "job video %s is not in this server's storage %s", result.video_uri, self.storage.location
            )
            video = None
        if video is None:
            return Links(expires_at=expires)
        return Links(
            video_url=video.url,
            thumbnail_url=poster.url if poster else "",
            url_expires_at=video.expires_at,
            expires_at=expires,
        )

    def links_of(self, record: JobRecord) -> Links | None:
        return None if record.result is None else self.links(record.result, record.finished_at)

    def store_upload(self, frames: Frames, fps: int) -> str:
        """Store an uploaded video an extension continues, as workers store theirs (the retention sweeps it
        too); its URI. Blocks (call off the loop)."""
        stored = self.storage.put(
            f"upload-{uuid.uuid4().hex}", encode_mp4(frames, fps), encode_poster(frames)
        )
        return stored.uri

    async def delete_files(self, record: JobRecord) -> None:
        """Delete a job's video and poster (the job is being deleted) and its search index entry."""
        if record.result is None:
            return
        if self.index is not None:
            await self.index.forget([record.id])
        try:
            await asyncio.to_thread(self.storage.delete, record.result.video_uri)
        except NotInStorage:
            log.warning("job %s names a video outside the storage; nothing deleted", record.id)

    async def download(self, record: JobRecord, variant: Variant) -> FileDownload:
        """The job's video, poster or spritesheet in chunks; NOT_FOUND once expired, FAILED_PRECONDITION
        before it completed, NOT_FOUND for an image the job was stored without."""
        result = record.result
        if record.state != JobState.COMPLETED or result is None:
            state = record.state.name.lower()
            raise FailedPrecondition(f"job {record.id} is {state}: only a completed job has a video")
        if self.links(result, record.finished_at).expired:
            raise NotFound(
                f"the video of job {record.id} expired (the server keeps videos {_days(self.retention)})"
            )
        if variant == Variant.THUMBNAIL and not result.thumbnail_uri:
            raise NotFound(f"job {record.id} has no thumbnail (it was stored before thumbnails existed)")
        try:
            opened = await asyncio.to_thread(self.storage.open, result.video_uri, variant)
        except NotFound as exc:
            # No record says whether a spritesheet was stored: a video that is there without one predates them.
            if variant != Variant.SPRITESHEET:
                raise
            raise NotFound(
                f"job {record.id} has no spritesheet (it was stored before spritesheets existed)"
            ) from exc
        mime = result.mime_type if variant == Variant.VIDEO else POSTER_MIME_TYPE
        return FileDownload(opened.size_bytes, mime, _chunks(opened.chunks))

    async def sweep(self) -> int:
        """Delete the files of jobs that completed longer ago than the retention; how many videos."""
        if self.retention is None:
            return 0
        # A file's time (S3's LastModified) is when its upload began or ended, a little before the job
        # completed: the margin keeps deletion after the job says "expired", never before (no broken links).
        margin = min(self.retention, SWEEP_MARGIN)
        cutoff = time.time() - self.retention - margin
        deleted = await asyncio.to_thread(self.storage.delete_before, cutoff)
        if self.index is not None:
            # By acceptance time, a little before completion: rows go no later than the files.
            await self.index.forget_before(time.time() - self.retention)
        if deleted:
            log.info("deleted %d expired videos from %s", deleted, self.storage.location)
        return deleted

    async def sweep_forever(self) -> None:
        """Sweep every minute (more often for a retention under four minutes) until cancelled."""
        interval = min(SWEEP_INTERVAL, max(1.0, (self.retention or SWEEP_INTERVAL) / 4))
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # storage unreachable: try again next time
                log.warning("could not delete expired videos from %s: %s", self.storage.location, exc)
            await asyncio.sleep(interval)


async def _chunks(iterator: Generator[bytes]) -> AsyncIterator[bytes]:
    """A blocking chunk generator read off the event loop, one chunk at a time (bounded memory).

    Closed when the download ends early (the caller went away), so the file or connection is let go.
    """
    try:
        while (chunk := await asyncio.to_thread(next, iterator, None)) is not None:
            yield chunk
    finally:
        iterator.close()


def _days(seconds: float | None) -> str:
    if seconds is None:
        return "until deleted"
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g} seconds"
