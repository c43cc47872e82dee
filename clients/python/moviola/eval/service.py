"""The harness's embeddings from a Moviola server: ``EmbedBatch``, many inputs per call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from moviola.client import Client, EmbedOptions
from moviola.eval.retrieval import Model, Vectors

#: Inputs per EmbedBatch call (videos are large: fewer of them).
TEXTS_PER_CALL = 128
VIDEOS_PER_CALL = 16


class ServerEmbeds:
    def __init__(self, client: Client, frames: int = 8) -> None:
        self._client = client
        self._frames = frames

    def models(self) -> list[Model]:
        return [Model(m.id, m.accepts_text, m.accepts_images) for m in self._client.list_embedding_models()]

    def _batch(self, requests: list[EmbedOptions], per_call: int) -> Vectors:
        vectors: list[Any] = []
        for start in range(0, len(requests), per_call):
            for result in self._client.embed_batch(requests[start : start + per_call]):
                if result.WhichOneof("result") != "embedding":
                    raise RuntimeError(
                        f"the server could not embed an input: {result.error.code} {result.error.message}"
                    )
                vectors.append(np.asarray(result.embedding.vector, dtype=np.float32))
        return np.stack(vectors)

    def texts(self, model: str, texts: Sequence[str]) -> Vectors:
        return self._batch([EmbedOptions(text=t, model=model) for t in texts], TEXTS_PER_CALL)

    def videos(self, model: str, videos: Sequence[bytes], pooling: str) -> Vectors:
        requests = [
            EmbedOptions(video=v, model=model, pooling=pooling, frame_count=self._frames) for v in videos
        ]
        return self._batch(requests, VIDEOS_PER_CALL)
