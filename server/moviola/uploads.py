"""Uploaded videos, decoded and checked at the door, before anything is stored or queued.

A caller's video (a character's source clip) is decoded in full with PyAV here, off the event loop,
so that a file the server cannot use is refused with ``InvalidRequest`` naming the field, never
found out later. The checks, in order: bytes, the container (MP4/MOV or Matroska/WebM, told by its
first bytes: ffmpeg never probes, so no playlist or reference demuxer opens other files), a video
stream of a known codec, its dimensions, then every frame as it decodes (dimensions again, since a
stream may change them; the frame count; the duration; the pixels decoded in all): a small file that
unpacks into hours of video or gigapixel frames stops at the first frame over a limit.

``sample`` keeps a few evenly spaced frames, scaled down, whatever the length: the stride doubles
each time the kept frames fill up, so memory stays bounded and the count need not be known first.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from moviola.errors import InvalidRequest
from moviola.validation import MAX_VIDEO_BYTES

if TYPE_CHECKING:
    from av.container import InputContainer

#: One RGB frame, (height, width, 3).
Picture = npt.NDArray[np.uint8]

#: The containers accepted, by their first bytes: ffmpeg is told which demuxer to use.
CONTAINERS = {"mp4": "MP4 or MOV", "matroska": "Matroska or WebM"}
#: The video codecs decoded; ffmpeg has many more, each one more parser facing callers.
CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4", "mjpeg", "prores"})


@dataclass(frozen=True)
class VideoLimits:
    """What an uploaded video may be; ``docs/api.md`` ("Limits") lists them."""

    max_bytes: int = MAX_VIDEO_BYTES
    #: Longest side, and pixels of one frame (4K UHD).
    max_side: int = 4096
    max_pixels: int = 3840 * 2160
    max_frames: int = 1800
    max_seconds: float = 120.0
    #: Pixels decoded in all (every frame's width x height): what bounds the CPU one upload costs.
    max_decoded_pixels: int = 2_000_000_000


@dataclass(frozen=True)
class DecodedVideo:
    width: int
    height: int
    frames: int
    seconds: float
    #: A few frames spread over the video (RGB, at most ``sample``'s ``long_side``), in order.
    samples: list[Picture] = field(default_factory=list)


def _container(data: bytes) -> str:
    """The demuxer for ``data``'s first bytes; ``InvalidRequest`` for any other file."""
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    raise InvalidRequest("video", f"must be a video file: {' or '.join(CONTAINERS.values())}")


class _Sampler:
    """Every ``stride``-th frame, at most ``2 * keep`` of them; the stride doubles when they fill up."""

    def __init__(self, keep: int) -> None:
        self.keep, self.stride = keep, 1
        self.kept: list[tuple[int, Picture]] = []

    def wants(self, index: int) -> bool:
        return index % self.stride == 0

    def add(self, index: int, frame: Picture) -> None:
        self.kept.append((index, frame))
        if len(self.kept) >= 2 * self.keep:
            self.stride *= 2
            self.kept = [(i, f) for i, f in self.kept if i % self.stride == 0]


def _too_big(limits: VideoLimits, width: int, height: int) -> str | None:
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        return f"is {width}x{height}; the limit is {limits.max_side} on a side and {limits.max_pixels} pixels"
    return None


def decode(
    data: bytes, *, keep: int = 8, long_side: int = 1280, limits: VideoLimits | None = None
) -> DecodedVideo:
    """Decode the whole of ``data`` within ``limits``, keeping about ``keep`` frames; blocks (call off the loop).

    Raises ``InvalidRequest`` naming ``video`` for anything but a decodable video within the limits.
    """
    limits = limits or VideoLimits()
    if not data:
        raise InvalidRequest("video", "is empty")
    if len(data) > limits.max_bytes:
        raise InvalidRequest("video", f"is {len(data)} bytes; the limit is {limits.max_bytes}")
    import av

    try:
        with av.open(io.BytesIO(data), mode="r", format=_container(data)) as container:
            return _decode(container, keep, long_side, limits)
    except av.FFmpegError as exc:
        raise InvalidRequest("video", f"could not be decoded ({exc})") from exc
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise InvalidRequest("video", f"could not be decoded ({type(exc).__name__}: {exc})") from exc


class _Tally:
    """Counts what has decoded, and refuses the first frame over a limit."""

    def __init__(self, limits: VideoLimits) -> None:
        self.limits = limits
        self.frames, self.pixels, self.last_time = 0, 0, 0.0

    def add(self, width: int, height: int, time: float | None) -> None:
        limits = self.limits
        if error := _too_big(limits, width, height):
            raise InvalidRequest("video", f"has a frame that {error}")
        self.frames, self.pixels = self.frames + 1, self.pixels + width * height
        self.last_time = max(self.last_time, time or 0.0)
        if self.frames > limits.max_frames:
            raise InvalidRequest("video", f"has more than {limits.max_frames} frames")
        if self.last_time > limits.max_seconds:
            raise InvalidRequest("video", f"is longer than {limits.max_seconds:g} seconds")
        if self.pixels > limits.max_decoded_pixels:
            raise InvalidRequest("video", f"decodes to more than {limits.max_decoded_pixels} pixels in all")


def _decode(container: InputContainer, keep: int, long_side: int, limits: VideoLimits) -> DecodedVideo:
    if not container.streams.video:
        raise InvalidRequest("video", "has no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in CODECS:
        raise InvalidRequest("video", f"is {codec}; the codecs accepted are {', '.join(sorted(CODECS))}")
    if error := _too_big(limits, stream.codec_context.width, stream.codec_context.height):
        raise InvalidRequest("video", error)
    stream.thread_type = "AUTO"
    sampler, tally = _Sampler(keep), _Tally(limits)
    for frame in container.decode(stream):
        tally.add(frame.width, frame.height, frame.time)
        if sampler.wants(tally.frames - 1):
            scale = min(1.0, long_side / max(frame.width, frame.height))
            width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
            picture = np.asarray(frame.to_ndarray(format="rgb24", width=width, height=height), dtype=np.uint8)
            sampler.add(tally.frames - 1, picture)
    if tally.frames == 0:
        raise InvalidRequest("video", "has no frames that decode")
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    kept = [picture for _, picture in sampler.kept]
    step = max(1, len(kept) // keep)
    return DecodedVideo(
        width=int(stream.codec_context.width or kept[0].shape[1]),
        height=int(stream.codec_context.height or kept[0].shape[0]),
        frames=tally.frames,
        seconds=tally.last_time + (float(1 / rate) if rate else 0.0),
        samples=kept[::step][:keep],
    )


#: ``tail`` or ``head``: an upload's frames an extension or an edit starts from.
Reader = Callable[[bytes, int, Callable[[int, int], tuple[int, int]]], npt.NDArray[np.uint8]]


def tail(
    data: bytes,
    count: int,
    size_for: Callable[[int, int], tuple[int, int]],
    limits: VideoLimits | None = None,
) -> npt.NDArray[np.uint8]:
    """The last ``count`` frames of an uploaded video (an extension continues them), RGB, scaled to
    ``size_for(width, height)``; the whole video is decoded within ``limits``. Blocks (call off the loop).

    Raises ``InvalidRequest`` naming ``video``.
    """
    return _window(data, count, size_for, limits, last=True)


def head(
    data: bytes,
    count: int,
    size_for: Callable[[int, int], tuple[int, int]],
    limits: VideoLimits | None = None,
) -> npt.NDArray[np.uint8]:
    """The first ``count`` frames of an uploaded video (an edit remakes them), as ``tail`` keeps the last;
    the whole video is still decoded within ``limits``. Blocks (call off the loop).

    Raises ``InvalidRequest`` naming ``video``.
    """
    return _window(data, count, size_for, limits, last=False)


def _window(
    data: bytes,
    count: int,
    size_for: Callable[[int, int], tuple[int, int]],
    limits: VideoLimits | None,
    *,
    last: bool,
) -> npt.NDArray[np.uint8]:
    limits = limits or VideoLimits()
    if not data:
        raise InvalidRequest("video", "is empty")
    if len(data) > limits.max_bytes:
        raise InvalidRequest("video", f"is {len(data)} bytes; the limit is {limits.max_bytes}")
    import av

    kept: deque[npt.NDArray[np.uint8]] = deque(maxlen=count)
    try:
        with av.open(io.BytesIO(data), mode="r", format=_container(data)) as container:
            if not container.streams.video:
                raise InvalidRequest("video", "has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.name not in CODECS:
                raise InvalidRequest(
                    "video", f"is {stream.codec_context.name}; accepted: {', '.join(sorted(CODECS))}"
                )
            width, height = size_for(stream.codec_context.width, stream.codec_context.height)
            tally = _Tally(limits)
            for frame in container.decode(stream):
                tally.add(frame.width, frame.height, frame.time)
                if last or len(kept) < count:
                    picture = frame.to_ndarray(format="rgb24", width=width, height=height)
                    kept.append(np.asarray(picture, dtype=np.uint8))
    except av.FFmpegError as exc:
        raise InvalidRequest("video", f"could not be decoded ({exc})") from exc
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise InvalidRequest("video", f"could not be decoded ({type(exc).__name__}: {exc})") from exc
    if not kept:
        raise InvalidRequest("video", "has no frames that decode")
    return np.stack(list(kept))
