"""Small pipelines, one per failure mode, for in-process servers.

They implement the worker's ``VideoPipeline`` interface; the real diffusers
pipeline is covered by the tests that run ``moviola serve``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from moviola.catalog import TINY_WAN22_T2V, ModelSpec
from moviola.jobs import Expert, JobRequest, Phase
from moviola.pipelines.base import Frames, StepHooks


@dataclass
class ScriptedPipeline:
    """Runs ``num_inference_steps`` instant steps; can raise or block at a given step."""

    fail_at: int | None = None
    error: BaseException | None = None
    block_at: int | None = None
    gate: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)
    runs: int = 0
    step_seconds: float = 0.0
    spec: ModelSpec = TINY_WAN22_T2V

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        self.runs += 1
        hooks.phase(Phase.TEXT_ENCODING)
        hooks.phase(Phase.DENOISING)
        total = request.num_inference_steps
        for step in range(1, total + 1):
            if step == self.block_at:
                self.reached.set()
                # Wait to be let go, or until the job is cancelled (the next hooks.step raises then).
                while not self.gate.wait(0.01) and not getattr(hooks, "cancelled", False):
                    pass
            if self.step_seconds:
                time.sleep(self.step_seconds)  # stands in for a GPU step
            if step == self.fail_at and self.error is not None:
                raise self.error
            hooks.step(step, total, 1000.0 * (1 - step / total), Expert.HIGH_NOISE)
        hooks.phase(Phase.VAE_DECODING)
        return np.zeros((request.num_frames, request.height, request.width, 3), dtype=np.uint8)
