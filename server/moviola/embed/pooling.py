"""From frame vectors to one video vector.

``mean``: the normalised mean of the (normalised) frame vectors; it stays in the
model's space, so a video can be compared with a text or an image.

``temporal``: keeps order and motion. The frames are cut into ``SEGMENTS``
consecutive segments; the normalised mean of each, in order, is followed by the
normalised mean of the absolute frame-to-frame changes (how much each
feature moves); the concatenation is normalised.
Two videos with the same frames in another order, or the same scenes with other
motion, come out apart; cosine similarity still works. It is ``SEGMENTS + 1``
times the model's size and only comparable with other temporal vectors.
"""

from __future__ import annotations

import numpy as np

from moviola.embed.backend import Vectors

SEGMENTS = 4


def normalize(vectors: Vectors) -> Vectors:
    """L2-normalise along the last axis; all-zero vectors stay zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def mean(frames: Vectors) -> Vectors:
    return normalize(frames.mean(axis=0))


def temporal(frames: Vectors) -> Vectors:
    n = len(frames)
    bounds = [round(k * n / SEGMENTS) for k in range(SEGMENTS + 1)]
    # Fewer frames than segments: a segment takes the frame it falls on.
    starts = [min(lo, n - 1) for lo in bounds[:-1]]
    segments = [frames[lo : max(hi, lo + 1)].mean(axis=0) for lo, hi in zip(starts, bounds[1:], strict=True)]
    motion = np.abs(np.diff(frames, axis=0)).mean(axis=0) if n > 1 else np.zeros_like(frames[0])
    return normalize(np.concatenate([normalize(np.stack(segments)).reshape(-1), normalize(motion)]))
