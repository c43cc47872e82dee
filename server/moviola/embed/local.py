"""``EmbeddingBackend`` in-process: the encoders Triton would run, on a thread of their own.

The embedded default serves tiny random-weight models; ``--embed-repository``
serves the models of a Triton model repository (``triton/``) with their weights.
Embedding work runs on its own thread, never queued behind a generation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from moviola.embed import media, tiny
from moviola.embed.backend import EmbeddingModel, Pixels, Priority, Vectors
from moviola.embed.encoders import Encoder, load_encoder
from moviola.embed.repository import read_repository
from moviola.errors import InvalidRequest

log = logging.getLogger(__name__)

#: Most frames or texts per encoder call (the Triton configs' max_batch_size).
MAX_BATCH = 64

#: The embedded default: tiny models of the real architectures, built in the cache.
TINY_MODELS = {"tiny-siglip2": "siglip", "tiny-dinov2": "dinov2"}


class LocalBackend:
    def __init__(
        self,
        specs: dict[str, tuple[str, str]],
        device: str = "auto",
        *,
        build_dir: Path | None = None,
        licenses: dict[str, str] | None = None,
    ) -> None:
        """``specs``: model name -> (encoder kind, weights); tiny models are built in ``build_dir``."""
        self._specs = specs
        self._licenses = licenses or {}
        self._device = device
        self._build_dir = build_dir
        self._encoders: dict[str, Encoder] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moviola-embed")

    @classmethod
    def tiny(cls, cache_dir: Path, device: str = "auto") -> LocalBackend:
        specs = {name: (kind, str(cache_dir / name)) for name, kind in TINY_MODELS.items()}
        return cls(specs, device, build_dir=cache_dir)

    @classmethod
    def from_repository(cls, root: Path, device: str = "auto") -> LocalBackend:
        models = read_repository(root)
        licenses = {m.name: m.license for m in models}
        return cls({m.name: (m.encoder, m.weights) for m in models}, device, licenses=licenses)

    async def start(self) -> None:
        await asyncio.to_thread(self.load)

    def load(self) -> None:
        """Load every encoder (blocking; tiny models are built first)."""
        for name, (kind, weights) in self._specs.items():
            if self._build_dir is not None and name in tiny.BUILDERS:
                tiny.ensure_built(self._build_dir, name)
            self._encoders[name] = load_encoder(kind, weights, self._device)
            log.info("embedding model %s (%s) loaded from %s", name, kind, weights)

    async def models(self) -> dict[str, EmbeddingModel]:
        return {
            name: EmbeddingModel(
                name,
                encoder.image_size,
                encoder.accepts_text,
                MAX_BATCH,
                decodes_images=True,
                license=self._licenses.get(name, ""),
            )
            for name, encoder in self._encoders.items()
        }

    def _encoder(self, model: str) -> Encoder:
        try:
            return self._encoders[model]
        except KeyError:
            raise InvalidRequest("model", f"unknown embedding model {model!r}") from None

    async def embed_images(self, model: str, pixels: Pixels, *, priority: Priority) -> Vectors:
        encoder = self._encoder(model)
        return await asyncio.get_running_loop().run_in_executor(self._executor, encoder.embed_images, pixels)

    async def embed_image_file(self, model: str, data: bytes, *, priority: Priority) -> Vectors:
        encoder = self._encoder(model)
        size = encoder.image_size
        if size is None:
            raise InvalidRequest("model", f"{model} does not embed images")

        def run() -> Vectors:  # decoding too runs on the embedding thread, off the event loop
            return encoder.embed_images(media.load_image(data, size)[np.newaxis])

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def embed_texts(self, model: str, texts: Sequence[str], *, priority: Priority) -> Vectors:
        encoder = self._encoder(model)
        return await asyncio.get_running_loop().run_in_executor(self._executor, encoder.embed_texts, texts)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
