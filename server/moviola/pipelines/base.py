"""The pipeline interface the worker runs.

A pipeline turns a ``JobRequest`` into frames, calling ``hooks`` at each phase
and after every denoising step. A hook may raise ``JobCancelled``; the pipeline
lets it propagate, which stops the run before the VAE decode.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from moviola.catalog import ModelSpec
from moviola.jobs import Expert, JobRequest, Phase, Preview

Frames = npt.NDArray[np.uint8]
"""Video frames, shape (frames, height, width, 3), RGB."""


class StepHooks(Protocol):
    def phase(self, phase: Phase) -> None:
        """A new phase begins."""

    def wants_preview(self, step: int, total_steps: int) -> bool:
        """Whether step ``step`` should carry a preview (the request's ``preview_every``)."""

    def step(
        self,
        step: int,
        total_steps: int,
        timestep: float,
        expert: Expert,
        preview: Preview | None = None,
        cached: bool = False,
    ) -> None:
        """Denoising step ``step`` (1-based) finished, with its preview if one was wanted, and whether the
        step cache served it. May raise ``JobCancelled``."""

    def peak_memory(self, peak_bytes: int) -> None:
        """The job's peak accelerator (or process) memory."""


class VideoPipeline(Protocol):
    """One loaded model. Runs one request at a time, on a worker thread."""

    @property
    def spec(self) -> ModelSpec: ...

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames: ...


@runtime_checkable
class BatchingPipeline(VideoPipeline, Protocol):
    """A pipeline that can also run several requests of one ``JobRequest.batch_key`` as one batch."""

    def batchable(self, request: JobRequest) -> bool: ...

    def generate_batch(self, requests: list[JobRequest], hooks: list[StepHooks]) -> list[Frames | None]:
        """Each member's frames, or None for a member that left (its hooks raised ``JobCancelled``)."""
        ...
