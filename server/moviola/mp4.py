"""MP4 encoding (H.264, yuv420p) with PyAV, which bundles libx264."""

from __future__ import annotations

import io
from fractions import Fraction

import av

from moviola.frames import Frames

MIME_TYPE = "video/mp4"


def encode_mp4(frames: Frames, fps: int, *, crf: int = 18) -> bytes:
    """Encode RGB frames (frames, height, width, 3) to an MP4 file in memory.

    yuv420p halves the chroma resolution, so width and height must be even;
    every model Moviola serves produces multiples of 16.
    """
    count, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise ValueError(f"H.264 yuv420p needs an even width and height, got {width}x{height}")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        # One thread keeps the output byte-identical run to run and leaves the cores to torch.
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(frames[index], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


POSTER_MIME_TYPE = "image/jpeg"


def encode_poster(frames: Frames, *, quality: int = 85) -> bytes:
    """The middle frame as a JPEG: the job's thumbnail (a first frame is often still noise or black)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frames[len(frames) // 2]).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
