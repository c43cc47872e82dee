"""What the index holds and the small interface every index implements.

One row per completed video: its job, tenant, model, time and prompt, and two unit vectors of
one embedding model: the mean of its sampled frames (``video``) and its prompt (``prompt``).
A text query is compared with both (a cross-modal model puts words and pictures in one space);
an image or video query with the frames alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
#: Which of a row's vectors a query is compared with.
Column = Literal["video", "prompt"]


@dataclass(frozen=True)
class IndexEntry:
    job_id: str
    tenant: str
    model: str
    #: When the job was accepted (Unix seconds).
    created_at: float
    prompt: str
    video: Vector
    prompt_vector: Vector


@dataclass(frozen=True)
class Filters:
    """Which rows a search may return: one tenant's (None: every tenant's), of some models, in a time range."""

    tenant: str | None
    models: tuple[str, ...] = ()
    created_after: float | None = None
    created_before: float | None = None


@dataclass(frozen=True)
class Hit:
    job_id: str
    #: Cosine similarity, -1..1.
    score: float
    matched: Column
    model: str
    prompt: str
    created_at: float
    tenant: str


class VideoIndex(Protocol):
    """A vector index of videos, for one embedding model (its vectors' size is fixed by the first row)."""

    #: Where it lives, for logs (a folder or an s3:// URL).
    location: str

    async def add(self, entries: Sequence[IndexEntry]) -> None:
        """Insert the rows, replacing any of the same job id (indexing twice changes nothing)."""

    async def remove(self, job_ids: Sequence[str]) -> None:
        """Forget these jobs (unknown ids are ignored)."""

    async def remove_before(self, created_before: float) -> int:
        """Forget jobs accepted before this time (the video retention); how many."""
        ...

    async def search(self, vector: Vector, column: Column, filters: Filters, limit: int) -> list[Hit]:
        """The ``limit`` rows closest to ``vector`` in ``column``, best first."""
        ...

    async def entry(self, job_id: str) -> IndexEntry | None:
        """The row of a job, or None."""
        ...

    async def count(self) -> int: ...


def merge(hit_lists: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """Each job once, by its best score over the lists, best first.

    >>> a = Hit("j", 0.5, "video", "m", "p", 0.0, "")
    >>> [h.matched for h in merge([[a], [Hit("j", 0.9, "prompt", "m", "p", 0.0, "")]], 10)]
    ['prompt']
    """
    best: dict[str, Hit] = {}
    for hits in hit_lists:
        for hit in hits:
            if hit.job_id not in best or hit.score > best[hit.job_id].score:
                best[hit.job_id] = hit
    return sorted(best.values(), key=lambda h: h.score, reverse=True)[:limit]
