"""The seam between the embedding service and whatever runs the models.

``TritonBackend`` (``moviola.embed.triton``) calls a Triton Inference Server;
``LocalBackend`` (``moviola.embed.local``) runs the same encoders in-process.
Both raise only ``moviola.errors`` kinds: ``Unavailable`` when the models cannot
be reached, ``ResourceExhausted`` when their queue is full, ``InvalidRequest``
for an unknown model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from moviola.errors import FailedPrecondition

#: Square RGB frames, ``[N, S, S, 3]``.
Pixels = NDArray[np.uint8]
#: One float32 row per input.
Vectors = NDArray[np.float32]


class Priority(IntEnum):
    """Triton priority levels (1 is served first), as declared in the models' config.pbtxt."""

    #: A text or a single image: someone is waiting on a search.
    INTERACTIVE = 1
    #: Video frames: indexing work.
    BULK = 2


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    #: Side of the square RGB frames the model takes; None: text only.
    image_size: int | None
    accepts_text: bool
    #: Most frames or texts in one call.
    max_batch: int
    #: Whether the backend decodes encoded images itself (``embed_image_file``): the gateway then
    #: forwards the file as sent, smaller than its pixels, and spends no CPU decoding it.
    decodes_images: bool = False
    #: The weights' licence, from the model's configuration ("" when it states none).
    license: str = ""

    @property
    def accepts_images(self) -> bool:
        return self.image_size is not None


class EmbeddingBackend(Protocol):
    async def start(self) -> None:
        """Load or connect; called once before serving."""

    async def models(self) -> dict[str, EmbeddingModel]:
        """The models served now, by name."""

    async def embed_images(self, model: str, pixels: Pixels, *, priority: Priority) -> Vectors:
        """One row per frame of ``pixels`` ([N, S, S, 3] uint8), not normalised."""

    async def embed_image_file(self, model: str, data: bytes, *, priority: Priority) -> Vectors:
        """One row for an encoded image (PNG, JPEG, WebP, ...), decoded and fitted by the backend, not
        normalised; only for models with ``decodes_images``. ``InvalidRequest("image")`` for a file
        that does not decode."""

    async def embed_texts(self, model: str, texts: Sequence[str], *, priority: Priority) -> Vectors:
        """One row per text, not normalised."""

    async def aclose(self) -> None: ...


class NoBackend:
    """A gateway started without ``--triton-url``: Embed explains how to get one."""

    async def start(self) -> None:
        pass

    def _refuse(self) -> FailedPrecondition:
        return FailedPrecondition(
            "this gateway has no embedding backend: start it with --triton-url HOST:PORT"
        )

    async def models(self) -> dict[str, EmbeddingModel]:
        raise self._refuse()

    async def embed_images(self, model: str, pixels: Pixels, *, priority: Priority) -> Vectors:
        raise self._refuse()

    async def embed_image_file(self, model: str, data: bytes, *, priority: Priority) -> Vectors:
        raise self._refuse()

    async def embed_texts(self, model: str, texts: Sequence[str], *, priority: Priority) -> Vectors:
        raise self._refuse()

    async def aclose(self) -> None:
        pass
