"""Retrieval metrics and the harness: recall@1/5/10 and median rank, text-to-video and video-to-video.

A query's rank is 1 + the number of irrelevant items scored above its best relevant one (several
clips may be relevant: a caption's clips, a clip's twins). Video-to-video leaves the query itself
out of what it searches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from moviola.eval.clips import Clip

Vectors = npt.NDArray[np.float32]
KS = (1, 5, 10)


@dataclass(frozen=True)
class Row:
    model: str
    pooling: str
    direction: str
    queries: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    median_rank: float

    def key(self) -> tuple[str, str, str]:
        return self.model, self.pooling, self.direction


@dataclass(frozen=True)
class Model:
    name: str
    accepts_text: bool
    accepts_images: bool


class Embeds(Protocol):
    """What the harness needs from an embedding service (``ServerEmbeds``; tests pass an oracle)."""

    def models(self) -> list[Model]: ...

    def texts(self, model: str, texts: Sequence[str]) -> Vectors: ...

    def videos(self, model: str, videos: Sequence[bytes], pooling: str) -> Vectors: ...


def ranks(scores: Vectors, relevant: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per query row: 1 + how many irrelevant items score above the best relevant one."""
    best = np.where(relevant, scores, -np.inf).max(axis=1, keepdims=True)
    above = (scores > best) & ~relevant
    return np.asarray(above.sum(axis=1) + 1, dtype=np.int64)


def summary(model: str, pooling: str, direction: str, query_ranks: npt.NDArray[np.int64]) -> Row:
    r1, r5, r10 = (float(np.mean(query_ranks <= k)) for k in KS)
    return Row(model, pooling, direction, len(query_ranks), r1, r5, r10, float(np.median(query_ranks)))


def _unit(vectors: Vectors) -> Vectors:
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12), dtype=np.float32)


def text_to_video(captions: Vectors, videos: Vectors, clips: Sequence[Clip]) -> npt.NDArray[np.int64]:
    """Each distinct caption against every clip; its own clips are relevant."""
    distinct = list(dict.fromkeys(c.caption for c in clips))
    relevant = np.array([[c.caption == caption for c in clips] for caption in distinct])
    return ranks(_unit(captions) @ _unit(videos).T, relevant)


def video_to_video(videos: Vectors, clips: Sequence[Clip]) -> npt.NDArray[np.int64]:
    """Each clip with a twin against the others; clips of its group are relevant."""
    groups = np.array([c.group for c in clips])
    scores = _unit(videos) @ _unit(videos).T
    np.fill_diagonal(scores, -np.inf)
    relevant = groups[:, None] == groups[None, :]
    np.fill_diagonal(relevant, False)
    asking = relevant.any(axis=1)
    return ranks(scores[asking], relevant[asking])


def evaluate(
    embeds: Embeds,
    clips: Sequence[Clip],
    *,
    models: Sequence[str] = (),
    poolings: Sequence[str] = ("mean", "temporal"),
    progress: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """A row per (model, pooling, direction) the models allow; ``models`` empty: every one served."""
    served = [m for m in embeds.models() if m.accepts_images and (not models or m.name in models)]
    missing = set(models) - {m.name for m in served}
    if missing:
        raise ValueError(f"not served, or not for videos: {', '.join(sorted(missing))}")
    videos = [c.video for c in clips]
    with_twins = len({c.group for c in clips}) < len(clips)
    rows = []
    for model in served:
        for pooling in poolings:
            progress(f"{model.name}, {pooling} pooling: {len(clips)} clips")
            vectors = embeds.videos(model.name, videos, pooling)
            if model.accepts_text and pooling == "mean":  # temporal vectors are not in the text space
                captions = embeds.texts(model.name, list(dict.fromkeys(c.caption for c in clips)))
                rows.append(
                    summary(model.name, pooling, "text→video", text_to_video(captions, vectors, clips))
                )
            if with_twins:
                rows.append(summary(model.name, pooling, "video→video", video_to_video(vectors, clips)))
    return rows
