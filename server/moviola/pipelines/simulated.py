"""A worker whose pipeline only pretends: for scheduler tests and benchmarks, no torch needed.

    python -m moviola.runtime simulated-worker --redis-url redis://127.0.0.1:6379/0 --data-dir /tmp/v --step-seconds 0.05

Each denoising step takes ``--step-seconds``; a job whose prompt is
``--poison-prompt`` kills the worker process (SIGKILL), as a job that crashes
its worker would; frames are black. Everything else is the real worker: the
Redis queue, leases, events, MP4 encoding and storage.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from moviola.catalog import ModelSpec
from moviola.jobs import Expert, JobRequest, Phase
from moviola.pipelines.base import Frames, StepHooks


class SimulatedPipeline:
    def __init__(self, spec: ModelSpec, step_seconds: float, poison_prompt: str) -> None:
        self._spec = spec
        self.step_seconds = step_seconds
        self.poison_prompt = poison_prompt

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        if self.poison_prompt and request.prompt == self.poison_prompt:
            os.kill(os.getpid(), signal.SIGKILL)
        hooks.phase(Phase.TEXT_ENCODING)
        hooks.phase(Phase.DENOISING)
        total = request.num_inference_steps
        passes = 2 if request.guidance_scale > 1.0 else 1  # what a pipeline with guidance would run
        for step in range(1, total + 1):
            if self.step_seconds:
                time.sleep(self.step_seconds)  # stands in for a GPU step
            expert = Expert.HIGH_NOISE if step <= total // 2 else Expert.LOW_NOISE
            hooks.step(step, total, 1000.0 * (1 - (step - 1) / total), expert, transformer_passes=passes)
        hooks.phase(Phase.VAE_DECODING)
        return np.zeros((request.num_frames, request.height, request.width, 3), dtype=np.uint8)
