"""Many embeddings in one call (``EmbedBatch``): every request as if sent alone, texts batched.

Each request is checked and answered on its own: one that would fail alone fails alone, with the
error it would have got, and the others still get their vectors. Texts that resolve to the same
model go to the backend together, ``max_batch`` at a time (one Triton request instead of one per
text: that is where a batch beats many calls); images and videos run concurrently, each as
``Embedder.embed`` runs it.
"""

from __future__ import annotations

import asyncio
import time

from moviola.embed import pooling
from moviola.embed.backend import EmbeddingModel, Priority
from moviola.embed.service import Embedder, Embedding, EmbedQuery, TextInput
from moviola.errors import InvalidRequest, MoviolaError

#: Most requests in one EmbedBatch call.
MAX_REQUESTS = 256

Outcome = Embedding | MoviolaError


class _Batch:
    def __init__(self, embedder: Embedder, queries: list[EmbedQuery | MoviolaError]) -> None:
        self._embedder = embedder
        self._queries = queries
        #: A request that could not be read is its own outcome already.
        self.outcomes: list[Outcome | EmbedQuery] = list(queries)

    async def run(self) -> list[Outcome]:
        texts: dict[str, tuple[EmbeddingModel, list[int]]] = {}
        others: list[int] = []
        for index, query in enumerate(self._queries):
            if isinstance(query, MoviolaError):
                continue
            if not isinstance(query.input, TextInput):
                others.append(index)
            elif (model := await self._text_model(index, query)) is not None:
                texts.setdefault(model.name, (model, []))[1].append(index)
        await asyncio.gather(
            *(self._texts(model, indices) for model, indices in texts.values()),
            *(self._one(i) for i in others),
        )
        done = [outcome for outcome in self.outcomes if not isinstance(outcome, EmbedQuery)]
        assert len(done) == len(self.outcomes)
        return done

    async def _text_model(self, index: int, query: EmbedQuery) -> EmbeddingModel | None:
        try:
            return await self._embedder.text_model(query)
        except MoviolaError as error:
            self._fail([index], error)
            return None

    def _fail(self, indices: list[int], error: MoviolaError) -> None:
        for index in indices:
            self._embedder.failed("text", error)
            self.outcomes[index] = error

    async def _texts(self, model: EmbeddingModel, indices: list[int]) -> None:
        embedder = self._embedder
        for start in range(0, len(indices), model.max_batch):
            chunk = indices[start : start + model.max_batch]
            batch = [self._text(i) for i in chunk]
            started = time.perf_counter()
            try:
                async with embedder.slot():
                    vectors = await embedder.backend.embed_texts(
                        model.name, batch, priority=Priority.INTERACTIVE
                    )
            except MoviolaError as error:
                self._fail(chunk, error)
                continue
            seconds = time.perf_counter() - started
            for index, vector in zip(chunk, vectors, strict=True):
                embedder.observe(model.name, "text", seconds)
                self.outcomes[index] = Embedding(pooling.normalize(vector), model.name)

    def _text(self, index: int) -> str:
        query = self._queries[index]
        assert isinstance(query, EmbedQuery)
        assert isinstance(query.input, TextInput)
        return query.input.text

    async def _one(self, index: int) -> None:
        query = self._queries[index]
        assert isinstance(query, EmbedQuery)
        try:
            self.outcomes[index] = await self._embedder.embed(query)
        except MoviolaError as error:
            self.outcomes[index] = error


async def embed_batch(embedder: Embedder, queries: list[EmbedQuery | MoviolaError]) -> list[Outcome]:
    """One outcome per query, in order; a query given as an error (it could not be read) stays that error."""
    if not queries:
        raise InvalidRequest("requests", "send at least one request")
    if len(queries) > MAX_REQUESTS:
        raise InvalidRequest("requests", f"at most {MAX_REQUESTS} per call, got {len(queries)}")
    return await _Batch(embedder, queries).run()
