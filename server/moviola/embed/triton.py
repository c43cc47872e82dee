"""``EmbeddingBackend`` over a Triton Inference Server (``tritonclient.grpc.aio``).

Models are discovered from the server (repository index, metadata, config), so
the gateway needs no list of its own. Foreign errors are translated here, once:

    Triton unreachable or not answering in time  -> Unavailable (retry after 1 s)
    Triton's queue for the model is full         -> ResourceExhausted (retry after 0.5 s)
    model unknown or not ready                   -> InvalidRequest("model")
    the model cannot decode an image file        -> InvalidRequest("image")
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from moviola.embed.backend import EmbeddingModel, Pixels, Priority, Vectors
from moviola.embed.wire import IMAGE_ERROR, encode_texts
from moviola.errors import InvalidRequest, MoviolaError, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

#: Reconnect quickly after Triton restarts (gRPC's default backoff grows to two minutes).
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
#: Seconds a metadata call may take before Triton counts as down.
METADATA_TIMEOUT = 1.0


class TritonBackend:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client = InferenceServerClient(url, channel_args=CHANNEL_ARGS)
        self._models: dict[str, EmbeddingModel] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to wait for: models are discovered on first use, so Triton may start later."""

    def _translate(self, exc: InferenceServerException) -> MoviolaError:
        status, message = exc.status() or "", exc.message() or str(exc)
        if "maximum queue size" in message:
            return ResourceExhausted(f"the embedding queue is full ({message})", retry_after=0.5)
        if status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED") or (
            "Deadline Exceeded" in message
        ):
            self._models = None  # rediscover once it is back: models may have changed
            return Unavailable(
                f"the embedding server (Triton at {self.url}) is unavailable: {message}", retry_after=1.0
            )
        if status == "StatusCode.INVALID_ARGUMENT" and message.startswith(IMAGE_ERROR):
            return InvalidRequest("image", message.removeprefix(IMAGE_ERROR))  # the model could not decode it
        if "unknown model" in message or "is not ready" in message or status == "StatusCode.NOT_FOUND":
            self._models = None
            return InvalidRequest("model", message)
        return MoviolaError(f"the embedding server failed: {message}")

    async def models(self) -> dict[str, EmbeddingModel]:
        if self._models is None:
            async with self._lock:
                if self._models is None:
                    self._models = await self._discover()
        return self._models

    async def _discover(self) -> dict[str, EmbeddingModel]:
        try:
            index = await self._client.get_model_repository_index(client_timeout=METADATA_TIMEOUT)
            found: dict[str, EmbeddingModel] = {}
            for entry in index.models:
                if entry.state != "READY":
                    continue
                metadata = await self._client.get_model_metadata(entry.name, client_timeout=METADATA_TIMEOUT)
                config = await self._client.get_model_config(entry.name, client_timeout=METADATA_TIMEOUT)
                inputs = {i.name: list(i.shape) for i in metadata.inputs}
                if "EMBEDDING" not in {o.name for o in metadata.outputs}:
                    continue  # not an embedding model
                image = inputs.get("IMAGE")
                found[entry.name] = EmbeddingModel(
                    name=entry.name,
                    image_size=int(image[-2]) if image else None,
                    accepts_text="TEXT" in inputs,
                    max_batch=max(1, int(config.config.max_batch_size)),
                    decodes_images="IMAGE_FILE" in inputs,
                    license=_license(config.config.parameters),
                )
        except InferenceServerException as exc:
            raise self._translate(exc) from exc
        log.info("Triton at %s serves %s", self.url, ", ".join(found) or "no embedding model")
        return found

    async def _infer(self, model: str, name: str, array: Pixels, priority: Priority) -> Vectors:
        tensor = InferInput(name, list(array.shape), "UINT8")
        tensor.set_data_from_numpy(array)
        try:
            result = await self._client.infer(
                model, [tensor], priority=int(priority), client_timeout=self.timeout
            )
        except InferenceServerException as exc:
            raise self._translate(exc) from exc
        vectors = result.as_numpy("EMBEDDING")
        if vectors is None or vectors.shape[0] != array.shape[0]:
            raise MoviolaError(f"Triton model {model} returned no vector per input")
        return np.asarray(vectors, dtype=np.float32)

    async def embed_images(self, model: str, pixels: Pixels, *, priority: Priority) -> Vectors:
        return await self._infer(model, "IMAGE", pixels, priority)

    async def embed_image_file(self, model: str, data: bytes, *, priority: Priority) -> Vectors:
        # One file per request: Triton batches requests whose files differ in length (ragged input).
        return await self._infer(
            model, "IMAGE_FILE", np.frombuffer(data, dtype=np.uint8)[np.newaxis], priority
        )

    async def embed_texts(self, model: str, texts: Sequence[str], *, priority: Priority) -> Vectors:
        return await self._infer(model, "TEXT", encode_texts(texts), priority)

    async def aclose(self) -> None:
        await self._client.close()


def _license(parameters: Any) -> str:
    """The ``license`` parameter of a model's config.pbtxt, or ""."""
    return str(parameters["license"].string_value) if "license" in parameters else ""
