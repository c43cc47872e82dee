"""A long video, rendered as segments (``moviola.segments`` plans them) on the pipeline thread.

Each segment after the first is conditioned on a frame of what is made so far, through the
model's image-to-video path (the pipeline takes a request's ``image``), and blended into it over
the frames they share. Progress events say the segment; a cancel stops at the next step of any
segment; a worker lost between segments hands the job back and it starts again from the first
(one terminal event, one video).
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from PIL import Image

from moviola import segments
from moviola.frames import Frames
from moviola.jobs import JobRequest
from moviola.pipelines.base import VideoPipeline
from moviola.worker.hooks import JobHooks


def _png(frame: Frames) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return out.getvalue()


def _joined(made: Frames, part: Frames, shared: int) -> Frames:
    """``part`` appended to ``made``, their ``shared`` frames cross-faded (``part`` starts at ``made[-shared]``)."""
    weights = np.linspace(0.0, 1.0, shared + 2, dtype=np.float32)[1:-1].reshape(-1, 1, 1, 1)
    blended = made[-shared:].astype(np.float32) * (1 - weights) + part[:shared].astype(np.float32) * weights
    return np.concatenate([made[:-shared], blended.round().astype(np.uint8), part[shared:]])


def render(
    pipeline: VideoPipeline, request: JobRequest, hooks: JobHooks, before: Frames | None = None
) -> tuple[Frames, int]:
    """The request's frames, and how many segments made them (1: the pipeline ran once).

    ``before``: the video an extension continues; it comes first, and every segment continues it.
    """
    spec = pipeline.spec
    sizes = segments.plan(request.num_frames, spec, 0 if before is None else len(before))
    if len(sizes) == 1 and before is None:
        return pipeline.generate(request, hooks), 1
    shared = segments.overlap(spec)
    made = before
    for index, size in enumerate(sizes):
        hooks.segment_started(index + 1, len(sizes))
        image = request.image if made is None else _png(made[-shared])
        part = pipeline.generate(
            replace(request, num_frames=size, image=image, seed=request.seed + index), hooks
        )
        made = part if made is None else _joined(made, part, shared)
    assert made is not None
    return made[: request.num_frames], len(sizes)
