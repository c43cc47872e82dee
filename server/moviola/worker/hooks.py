"""Step hooks: the bridge from the pipeline thread to the event loop.

The pipeline runs on a worker thread and calls these hooks; they time the
phases, turn steps into PROGRESS events, and raise ``JobCancelled`` once
cancellation is flagged. Events cross to the loop through ``emit``, which must
be thread-safe and keep their order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from moviola.errors import JobCancelled
from moviola.jobs import EventKind, Expert, LoraChoice, Phase, PhaseChanged, Preview, Progress, Timings


class JobHooks:
    def __init__(
        self, emit: Callable[[EventKind], None], *, preview_every: int = 0, loras: tuple[LoraChoice, ...] = ()
    ) -> None:
        self._emit = emit
        #: The adapters the run applies, told on the first step's event.
        self._loras = loras
        self._preview_every = preview_every
        self._cancel = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self.cancel_reason = ""
        self._phase_start: dict[Phase, float] = {}
        self._phase_end: dict[Phase, float] = {}
        #: Seconds of each phase's earlier runs (a long video runs its phases once per segment).
        self._spent: dict[Phase, float] = {}
        self._current: Phase | None = None
        #: Of a long video: the segment running (1-based) and how many; 0, 0 for one window.
        self.segment = 0
        self.total_segments = 0
        self.peak_memory_bytes = 0
        #: Steps the step cache served (the fast profile), and the transformer passes of the whole job.
        self.cached_steps = 0
        self.transformer_passes = 0

    # Called from the event loop.

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self._cancel.set()
        for listener in self._listeners:
            listener()

    def when_cancelled(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop) once a cancel is requested; at once if one was."""
        self._listeners.append(listener)
        if self.cancelled:
            listener()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def timings(self, queued: float, running: float) -> Timings:
        def took(phase: Phase) -> float:
            start = self._phase_start.get(phase)
            last = 0.0 if start is None else self._phase_end.get(phase, start) - start
            return self._spent.get(phase, 0.0) + last

        return Timings(
            queued=queued,
            text_encoding=took(Phase.TEXT_ENCODING),
            denoising=took(Phase.DENOISING),
            vae_decoding=took(Phase.VAE_DECODING),
            video_encoding=took(Phase.VIDEO_ENCODING),
            storing=took(Phase.STORING),
            running=running,
        )

    # Called from the pipeline thread (and the loop, for the last phases).

    def wait_cancelled(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` on the pipeline thread; True as soon as a cancel is requested."""
        return self._cancel.wait(seconds)

    def check(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(self.cancel_reason or "cancelled")

    def relay(self, kind: EventKind) -> None:
        """Send an event made elsewhere (a partner's, ``pairing.py``) as this job's, in order."""
        self._emit(kind)

    def segment_started(self, segment: int, total: int) -> None:
        """A long video's next segment begins (its phases and steps follow)."""
        self.check()
        self.segment, self.total_segments = segment, total

    def phase(self, phase: Phase) -> None:
        self.check()
        now = time.monotonic()
        if self._current is not None:
            self._phase_end[self._current] = now
        if phase in self._phase_start:  # a segment runs it again: keep the time of the runs before
            earlier = self._phase_end.get(phase, now) - self._phase_start[phase]
            self._spent[phase] = self._spent.get(phase, 0.0) + earlier
            self._phase_end.pop(phase, None)
        self._current = phase
        self._phase_start[phase] = now
        self._emit(PhaseChanged(phase=phase))

    def end_phase(self) -> None:
        if self._current is not None:
            self._phase_end[self._current] = time.monotonic()
            self._current = None

    def phase_spans(self) -> list[tuple[str, float, float]]:
        """Each phase that ran, as (name, start, end) in wall-clock seconds."""
        offset = time.time() - time.monotonic()
        return [
            (phase.value, start + offset, self._phase_end.get(phase, start) + offset)
            for phase, start in self._phase_start.items()
        ]

    def peak_memory(self, peak_bytes: int) -> None:
        self.peak_memory_bytes = peak_bytes

    def wants_preview(self, step: int, total_steps: int) -> bool:
        every = self._preview_every
        return every > 0 and (step % every == 0 or step == total_steps)

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
        self.cached_steps += cached
        self.transformer_passes += transformer_passes
        elapsed = time.monotonic() - self._phase_start.get(Phase.DENOISING, time.monotonic())
        # The steps left in this segment, then every step of the segments after it.
        later = total_steps * max(0, self.total_segments - self.segment)
        remaining = elapsed / step * (total_steps - step + later)
        self._emit(
            Progress(
                step=step,
                total_steps=total_steps,
                timestep=timestep,
                expert=expert,
                elapsed=elapsed,
                remaining=remaining,
                preview=preview,
                cached=cached,
                transformer_passes=transformer_passes,
                loras=self._loras if step == 1 and self.segment <= 1 else (),
                segment=self.segment,
                total_segments=self.total_segments,
            )
        )
        self.check()
