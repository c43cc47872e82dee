"""The stored videos a job starts from: the one an extension continues, the one an edit remakes.

Decoded and checked at submit and stored then (``derived.py``); read back here, on the pipeline
thread, and checked to be the video the job was accepted for.
"""

from __future__ import annotations

from moviola.errors import InvalidInput, NotFound
from moviola.frames import Frames
from moviola.jobs import JobRequest
from moviola.mp4 import decode_mp4
from moviola.storage.base import Storage, Variant


def continued(storage: Storage, request: JobRequest) -> Frames | None:
    """The video an extension continues; None for a video of its own."""
    if not request.continue_from:
        return None
    shape = (request.continued_frames, request.height, request.width)
    what = f"the video to extend ({request.extended_from or 'the uploaded video'})"
    return _read(storage, request.continue_from, shape, what)


def edited(storage: Storage, request: JobRequest) -> Frames:
    """The video an edit remakes."""
    shape = (request.num_frames, request.height, request.width)
    what = f"the video to edit ({request.edited_from or 'the uploaded video'})"
    return _read(storage, request.edit_from, shape, what)


def _read(storage: Storage, uri: str, shape: tuple[int, int, int], what: str) -> Frames:
    """Its frames, which must have the count, height and width the job was accepted with; ``InvalidInput``
    when it is gone or another one."""
    try:
        download = storage.open(uri, Variant.VIDEO)
    except NotFound as exc:  # deleted or expired since the job was accepted
        raise InvalidInput(f"{what} is gone: {exc.message}") from exc
    frames = decode_mp4(b"".join(download.chunks))
    if frames.shape[:3] != shape:
        raise InvalidInput(
            f"{what} is not the one the job was accepted for "
            f"({len(frames)} frames of {frames.shape[2]}x{frames.shape[1]})"
        )
    return frames
