"""The pipeline interface the worker runs.

A pipeline turns a ``JobRequest`` into frames, calling ``hooks`` at each phase
and after every denoising step. A hook may raise ``JobCancelled``; the pipeline
lets it propagate, which stops the run before the VAE decode.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from moviola.catalog import ModelSpec
from moviola.errors import JobCancelled
from moviola.frames import Frames as Frames  # re-exported: what a pipeline returns
from moviola.jobs import Expert, JobRequest, LoraChoice, Phase, Preview
from moviola.pipelines.lora import AdapterBank


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
        transformer_passes: int = 0,
    ) -> None:
        """Denoising step ``step`` (1-based) finished, with its preview if one was wanted, whether the
        step cache served it, and the full transformer passes it ran. May raise ``JobCancelled``."""

    def peak_memory(self, peak_bytes: int) -> None:
        """The job's peak accelerator (or process) memory."""


class VideoPipeline(Protocol):
    """One loaded model. Runs one request at a time, on a worker thread."""

    @property
    def spec(self) -> ModelSpec: ...

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames: ...


class WrappedHooks:
    """Another job's ``StepHooks`` with a say in what its cancel does (a batch member, a rank).

    Subclasses decide at ``phase_cancelled`` and ``after_step``; by default a cancel is raised at once.
    A ``pending`` cancel (set by a subclass) stands in for the wrapped hooks' next step.
    """

    def __init__(self, hooks: StepHooks) -> None:
        self._hooks = hooks
        self.pending: JobCancelled | None = None

    def phase(self, phase: Phase) -> None:
        try:
            self._hooks.phase(phase)
        except JobCancelled as exc:
            self.phase_cancelled(exc)

    def wants_preview(self, step: int, total_steps: int) -> bool:
        return self._hooks.wants_preview(step, total_steps)

    def step(
        self,
        step: int,
        total_steps: int,
        timestep: float,
        expert: Expert,
        preview: Preview | None = None,
        cached: bool = False,
        transformer_passes: int = 0,
    ) -> None:
        cancel = self.pending
        if cancel is None:
            try:
                self._hooks.step(step, total_steps, timestep, expert, preview, cached, transformer_passes)
            except JobCancelled as exc:
                cancel = exc
        self.after_step(step, total_steps, cancel)

    def peak_memory(self, peak_bytes: int) -> None:
        self._hooks.peak_memory(peak_bytes)

    def phase_cancelled(self, exc: JobCancelled) -> None:
        raise exc

    def after_step(self, step: int, total_steps: int, cancel: JobCancelled | None) -> None:
        if cancel is not None:
            raise cancel


@runtime_checkable
class TunedPipeline(VideoPipeline, Protocol):
    """A pipeline with quantized weights and LoRA adapters (what a result reports it ran with)."""

    quantization: str
    adapter_bank: AdapterBank | None

    def adapters_of(self, request: JobRequest) -> tuple[LoraChoice, ...]:
        """The adapters ``request`` runs with (a turbo profile's own among them)."""
        ...


@runtime_checkable
class EditingPipeline(VideoPipeline, Protocol):
    """A pipeline that can also edit a video: make ``video`` again from the request's prompt (video-to-video)."""

    def edit(self, request: JobRequest, hooks: StepHooks, video: Frames) -> Frames:
        """``video`` (the request's ``num_frames`` at its size) remade, ``request.strength`` of the way from
        it: ``int(num_inference_steps * strength)`` steps run, and the hooks count those."""
        ...


@runtime_checkable
class BatchingPipeline(VideoPipeline, Protocol):
    """A pipeline that can also run several requests of one ``JobRequest.batch_key`` as one batch."""

    def batchable(self, request: JobRequest) -> bool: ...

    def generate_batch(self, requests: list[JobRequest], hooks: list[StepHooks]) -> list[Frames | None]:
        """Each member's frames, or None for a member that left (its hooks raised ``JobCancelled``)."""
        ...
