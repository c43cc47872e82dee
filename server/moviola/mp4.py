"""MP4 encoding (H.264, yuv420p) with PyAV, which bundles libx264, and the JPEGs stored beside it.

The poster is the middle frame. The spritesheet is a grid of evenly spaced frames
(``SPRITESHEET_TILES`` at most, ``sheet_layout`` says where each goes), what a player's scrub bar
or a gallery shows; OpenAI's ``download_content(variant="spritesheet")`` asks for it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
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


#: The most frames a spritesheet shows (a 5x5 grid), and the widest a tile is (never enlarged).
SPRITESHEET_TILES = 25
SPRITESHEET_TILE_WIDTH = 256


@dataclass(frozen=True)
class SheetLayout:
    """Which frames a spritesheet shows, in order, and the grid they fill left to right, top to bottom."""

    frames: tuple[int, ...]
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def size(self) -> tuple[int, int]:
        """The sheet's (width, height) in pixels."""
        return self.columns * self.tile_width, self.rows * self.tile_height


def sheet_layout(count: int, width: int, height: int) -> SheetLayout:
    """The layout of the spritesheet of ``count`` frames of ``width`` x ``height``.

    ``min(count, 25)`` frames evenly spaced from the first to the last, ``ceil(sqrt(n))`` columns,
    as many rows as they fill; each tile the frame scaled to at most 256 px wide, aspect kept.

    >>> layout = sheet_layout(81, 1280, 720)  # Wan's 5 s at 720p: 5x5 tiles of 256x144
    >>> layout.frames[:5], layout.frames[-1], layout.size
    ((0, 3, 7, 10, 13), 80, (1280, 720))
    >>> sheet_layout(9, 64, 64).size
    (192, 192)
    """
    shown = min(count, SPRITESHEET_TILES)
    if shown < 1:
        raise ValueError("a spritesheet needs at least one frame")
    step = (count - 1) / (shown - 1) if shown > 1 else 0.0
    frames = tuple(round(i * step) for i in range(shown))
    columns = math.ceil(math.sqrt(shown))
    tile_width = min(width, SPRITESHEET_TILE_WIDTH)
    tile_height = max(1, round(height * tile_width / width))
    return SheetLayout(frames, columns, math.ceil(shown / columns), tile_width, tile_height)


def encode_spritesheet(frames: Frames, *, quality: int = 85) -> bytes:
    """The spritesheet of ``frames`` as a JPEG (``sheet_layout``; cells past the last frame are black)."""
    from PIL import Image

    count, height, width, _ = frames.shape
    layout = sheet_layout(count, width, height)
    sheet = Image.new("RGB", layout.size)
    tile = (layout.tile_width, layout.tile_height)
    for cell, index in enumerate(layout.frames):
        image = Image.fromarray(frames[index])
        if image.size != tile:
            # reducing_gap: a box reduction first, then Lanczos (a third of the time, as good to the eye).
            image = image.resize(tile, Image.Resampling.LANCZOS, reducing_gap=2.0)
        row, column = divmod(cell, layout.columns)
        sheet.paste(image, (column * layout.tile_width, row * layout.tile_height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_mp4(data: bytes) -> Frames:
    """A stored MP4's frames, RGB (an extension continues them); the file is one this server wrote."""
    import numpy as np

    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
