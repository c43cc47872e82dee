"""Images and videos in, square RGB frames out: decoding, frame sampling and fitting to a model's size.

Decoding errors become ``InvalidRequest`` naming the request field; nothing here
talks to a backend. Video decoding is blocking work: call it off the event loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from moviola.errors import InvalidRequest
from moviola.validation import IMAGE_FORMATS, check_image


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video to embed: ``count`` evenly spread, or ``fps`` per second."""

    count: int = 8
    fps: float | None = None
    #: Most frames one request may sample.
    limit: int = 256


def sampling(frame_count: int, frames_per_second: float, *, default: int = 8, limit: int = 256) -> Sampling:
    """Validate the request's sampling fields (0 means unset)."""
    if frame_count and frames_per_second:
        raise InvalidRequest("frames_per_second", "set frame_count or frames_per_second, not both")
    if frame_count > limit:
        raise InvalidRequest("frame_count", f"at most {limit} frames per request, got {frame_count}")
    if frames_per_second < 0 or frames_per_second != frames_per_second or frames_per_second > 1000:
        raise InvalidRequest("frames_per_second", f"must be within 0..1000, got {frames_per_second}")
    return Sampling(count=frame_count or default, fps=frames_per_second or None, limit=limit)


@dataclass(frozen=True)
class Frames:
    pixels: NDArray[np.uint8]  # [N, S, S, 3]
    indices: list[int]
    times: list[float]


def decode_image(data: bytes, field: str = "image") -> Image.Image:
    """Decode a PNG, JPEG or WebP image into RGB, once ``check_image`` has passed it."""
    check_image(data, field)
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:  # the header was fine, the body is truncated or corrupt
        raise InvalidRequest(field, f"cannot decode the image ({exc})") from exc


def load_image(data: bytes, size: int, field: str = "image") -> NDArray[np.uint8]:
    """Decode and ``fit``: the square frame a model of side ``size`` takes."""
    return fit(decode_image(data, field), size)


def fit(image: Image.Image, size: int) -> NDArray[np.uint8]:
    """Resize the shorter side to ``size`` and centre-crop a square, as the models' processors do.

    The square is cut from the source and resized (``box``), never the whole image: resizing a
    16384x1 strip first would make it 3.7 million pixels wide.
    """
    if image.width != size or image.height != size:
        side = min(image.width, image.height)
        left, top = (image.width - side) / 2, (image.height - side) / 2
        image = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    return np.array(
        image, dtype=np.uint8
    )  # a writable copy: torch.from_numpy warns on Pillow's read-only view


def _open(source: bytes | Path) -> av.container.InputContainer:
    return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")


def _frame_count(source: bytes | Path) -> int:
    with _open(source) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def _wanted(source: bytes | Path, sampling: Sampling) -> set[int] | None:
    """Frame indices for a count; None when sampling by rate (decided while decoding, no count needed)."""
    if sampling.fps is not None:
        return None
    total = _frame_count(source)
    count = min(sampling.count, total)
    return {int((k + 0.5) * total / count) for k in range(count)}


def sample_video(source: bytes | Path, sampling: Sampling, size: int, field: str = "video") -> Frames:
    """Decode ``source`` (file bytes or a path) and return the sampled frames, fitted to ``size``."""
    try:
        wanted = _wanted(source, sampling)
        pixels: list[NDArray[np.uint8]] = []
        indices: list[int] = []
        times: list[float] = []
        next_time = 0.0
        with _open(source) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0) or 24.0
            for index, frame in enumerate(container.decode(stream)):
                time = float(frame.time) if frame.time is not None else index / rate
                if wanted is not None:
                    keep = index in wanted
                else:
                    assert sampling.fps is not None
                    keep = time + 1e-6 >= next_time
                    if keep:
                        next_time += 1.0 / sampling.fps
                if not keep:
                    continue
                if len(indices) == sampling.limit:
                    raise InvalidRequest(
                        "frames_per_second",
                        f"samples more than the {sampling.limit} frames a request may embed",
                    )
                pixels.append(fit(frame.to_image(), size))  # type: ignore[no-untyped-call]
                indices.append(index)
                times.append(time)
    except (av.FFmpegError, IndexError, ValueError) as exc:
        # IndexError: no video stream; FFmpegError: unreadable container or stream.
        raise InvalidRequest(field, f"cannot decode the video ({exc or 'no video stream'})") from exc
    if not indices:
        raise InvalidRequest(field, "the video has no frames")
    return Frames(np.stack(pixels), indices, times)
