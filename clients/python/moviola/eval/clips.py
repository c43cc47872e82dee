"""A labelled clip set the harness renders itself: coloured shapes that move, with captions saying so.

Every label is a colour, a shape and a motion ("a red circle moving to the right"); each label is
rendered ``renderings`` times with a different background, size and starting place, so that a
video query has relevant clips besides itself. Nothing is downloaded, and the answer is known:
a clip's caption and its twins are what it should retrieve.
"""

from __future__ import annotations

import io
import itertools
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = {
    "moving to the right": (1, 0),
    "moving to the left": (-1, 0),
    "moving up": (0, -1),
    "moving down": (0, 1),
    "standing still": (0, 0),
}


@dataclass(frozen=True)
class Clip:
    name: str
    caption: str
    #: Clips of one group are relevant to each other (video-to-video).
    group: str
    video: bytes


def _mask(shape: str, size: int, side: int, x: float, y: float) -> npt.NDArray[np.bool_]:
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy, r = x, y, side / 2
    if shape == "circle":
        return np.asarray((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)
    if shape == "square":
        return np.asarray((abs(xx - cx) <= r) & (abs(yy - cy) <= r))
    return np.asarray((yy - cy <= r) & (yy - cy >= -r) & (abs(xx - cx) <= (yy - cy + r) / 2))


def render(colour: str, shape: str, motion: str, *, seed: int, size: int = 112, frames: int = 16) -> bytes:
    """One clip as an H.264 MP4 (8 fps)."""
    import av

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 90, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    side = int(rng.integers(size // 5, size // 3))
    dx, dy = MOTIONS[motion]
    travel = size - side - 8
    start_x = size / 2 - dx * travel / 2 + (rng.uniform(-8, 8) if dx == 0 else 0)
    start_y = size / 2 - dy * travel / 2 + (rng.uniform(-8, 8) if dy == 0 else 0)
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            t = i / (frames - 1)
            frame = background.copy()
            frame[_mask(shape, size, side, start_x + dx * travel * t, start_y + dy * travel * t)] = COLOURS[
                colour
            ]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def procedural(labels: int = 24, renderings: int = 2, seed: int = 0) -> list[Clip]:
    """``labels`` distinct (colour, shape, motion) labels, ``renderings`` clips each, fixed by ``seed``."""
    every = list(itertools.product(COLOURS, SHAPES, MOTIONS))
    chosen = random.Random(seed).sample(every, min(labels, len(every)))
    clips = []
    for number, (colour, shape, motion) in enumerate(chosen):
        caption = f"a {colour} {shape} {motion}"
        for rendering in range(renderings):
            video = render(colour, shape, motion, seed=seed * 10_000 + number * 100 + rendering)
            clips.append(
                Clip(f"{colour}-{shape}-{motion.replace(' ', '-')}-{rendering}", caption, caption, video)
            )
    return clips
