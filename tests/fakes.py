"""Small fakes for unit tests of the layer above them.

Pipelines, one per failure mode, implement the worker's ``VideoPipeline``
interface; the real diffusers pipeline is covered by the tests that run
``moviola serve``. ``FakeEmbeddingBackend`` stands in for Triton under the
``Embedder``; the real Triton is covered by test_embed_triton.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from moviola.catalog import TINY_WAN22_T2V, ModelSpec
from moviola.embed import media
from moviola.embed.backend import EmbeddingModel, Pixels, Priority, Vectors
from moviola.jobs import Expert, JobRequest, Phase, Preview
from moviola.pipelines.base import Frames, StepHooks
from moviola.pipelines.preview import preview_size


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
            preview = scripted_preview(request, step) if hooks.wants_preview(step, total) else None
            hooks.step(step, total, 1000.0 * (1 - step / total), Expert.HIGH_NOISE, preview)
        hooks.phase(Phase.VAE_DECODING)
        return np.zeros((request.num_frames, request.height, request.width, 3), dtype=np.uint8)


def scripted_preview(request: JobRequest, step: int) -> Preview:
    """A JPEG of the preview's documented size whose grey level is the step (for transport tests)."""
    import io

    from PIL import Image

    width, height = preview_size(request.width, request.height)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (step * 10 % 256,) * 3).save(buffer, format="JPEG")
    return Preview(image=buffer.getvalue(), width=width, height=height)


class FakeEmbeddingBackend:
    """An in-memory ``EmbeddingBackend`` for unit tests of the ``Embedder`` above it.

    Vectors are the mean colour of each frame (3 values) or the text's length and vowel
    count; every call is recorded with its batch size and priority. ``gate``, when set,
    holds image calls until it is set.
    """

    def __init__(self, models: list[EmbeddingModel]) -> None:
        self._models = {m.name: m for m in models}
        self.calls: list[tuple[str, str, int, Priority]] = []
        #: Encoded images received, as sent.
        self.files: list[bytes] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0
        #: One item per image call that has started.
        self.entered: asyncio.Queue[None] = asyncio.Queue()

    async def start(self) -> None:
        pass

    async def models(self) -> dict[str, EmbeddingModel]:
        return self._models

    async def embed_images(self, model: str, pixels: Pixels, *, priority: Priority) -> Vectors:
        self.calls.append((model, "images", len(pixels), priority))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.entered.put_nowait(None)
        try:
            if self.gate is not None:
                await self.gate.wait()
            means: Vectors = pixels.reshape(len(pixels), -1, 3).mean(axis=1).astype(np.float32)
            return means
        finally:
            self.running -= 1

    async def embed_image_file(self, model: str, data: bytes, *, priority: Priority) -> Vectors:
        size = self._models[model].image_size
        assert self._models[model].decodes_images
        assert size is not None
        self.files.append(data)
        self.calls.append((model, "files", 1, priority))
        means: Vectors = media.load_image(data, size).reshape(1, -1, 3).mean(axis=1).astype(np.float32)
        return means

    async def embed_texts(self, model: str, texts: Sequence[str], *, priority: Priority) -> Vectors:
        self.calls.append((model, "texts", len(texts), priority))
        return np.array([[len(t), sum(c in "aeiou" for c in t), 1.0] for t in texts], dtype=np.float32)

    async def aclose(self) -> None:
        pass
