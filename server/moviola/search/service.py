"""SearchVideos: the query embedded with the index's model, the index searched within the caller's tenant.

    search = VideoSearch(open_index, embedder, jobs=service.get, settings=settings.search)
    hits, model = await search.search(SearchQuery(TextInput("a red fox"), top_k=5), caller)

A text query is compared with the videos' frames and with their prompts (a cross-modal model
puts both in one space) and each job keeps its better score; an image, a video or a job's
video with the frames alone. Callers see their own tenant's videos only; without an auth file
everyone is one tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from moviola.auth.caller import ANONYMOUS, Caller
from moviola.embed.service import (
    Embedder,
    EmbedQuery,
    ImageInput,
    JobInput,
    TextInput,
    VideoInput,
)
from moviola.errors import FailedPrecondition, InvalidRequest, JobNotFound, NotFound
from moviola.jobs import JobRecord
from moviola.search.index import Column, Filters, Hit, IndexEntry, VideoIndex, merge
from moviola.settings import SearchSettings
from moviola.validation import MAX_JOB_ID_CHARS, MAX_NAME_CHARS, check_length

#: Hits when the query does not say, and the most one query may ask for.
DEFAULT_TOP_K = 10
MAX_TOP_K = 100
#: Models one query may filter on.
MAX_MODELS = 32

Query = TextInput | ImageInput | VideoInput | JobInput

NO_INDEX = (
    "this server keeps no search index: start it with --search-index (a folder, or s3://BUCKET/PREFIX "
    "shared by every gateway); see docs/search.md"
)


@dataclass(frozen=True)
class SearchQuery:
    query: Query
    #: 0: ``DEFAULT_TOP_K``.
    top_k: int = 0
    models: tuple[str, ...] = ()
    created_after: float | None = None
    created_before: float | None = None


class Searching(Protocol):
    """What the search face calls: ``VideoSearch``, or ``NoSearch`` on a server without an index."""

    async def search(self, query: SearchQuery, caller: Caller = ANONYMOUS) -> tuple[list[Hit], str]: ...


class NoSearch:
    """A server without ``--search-index``: every search is refused, saying how to keep an index."""

    async def search(self, query: SearchQuery, caller: Caller = ANONYMOUS) -> tuple[list[Hit], str]:
        raise FailedPrecondition(NO_INDEX)


class VideoSearch:
    def __init__(
        self,
        open_index: Callable[[str], VideoIndex],
        embedder: Embedder,
        settings: SearchSettings,
        jobs: Callable[[str], Awaitable[JobRecord]],
    ) -> None:
        """``open_index(embedding_model)``: the index of that model's vectors (opened on first use);
        ``jobs``: the queue's ``get`` (hits whose job is gone, deleted or expired, are dropped)."""
        self._open_index = open_index
        self._jobs = jobs
        self._embedder = embedder
        self._settings = settings
        self._index: VideoIndex | None = None
        self._model: str | None = None
        self._lock = asyncio.Lock()

    async def embedding_model(self) -> str:
        """``--search-embedding-model``, else the embedder's default model for text (which must see images too)."""
        if self._model is None:
            listings = await self._embedder.models()
            wanted = self._settings.embedding_model
            chosen = next(
                (m.model for m in listings if (m.model.name == wanted if wanted else m.default_for_text)),
                None,
            )
            if chosen is None or not (chosen.accepts_text and chosen.image_size):
                served = ", ".join(
                    m.model.name for m in listings if m.model.accepts_text and m.model.image_size
                )
                raise FailedPrecondition(
                    f"video search needs an embedding model that takes text and images "
                    f"({wanted or 'the default'} does not); served: {served or 'none'}"
                )
            self._model = chosen.name
        return self._model

    async def index(self) -> VideoIndex:
        if self._index is None:  # opened once; the lock only keeps two first callers from both opening it
            async with self._lock:
                if self._index is None:
                    self._index = self._open_index(await self.embedding_model())
        return self._index

    async def add(self, entries: Sequence[IndexEntry]) -> None:
        if entries:
            await (await self.index()).add(entries)

    async def forget(self, job_ids: Sequence[str]) -> None:
        """Take deleted jobs out of the index."""
        await (await self.index()).remove(job_ids)

    async def forget_before(self, created_before: float) -> int:
        """Take jobs accepted before this time out of the index (their videos expired)."""
        return await (await self.index()).remove_before(created_before)

    async def search(self, query: SearchQuery, caller: Caller = ANONYMOUS) -> tuple[list[Hit], str]:
        """The caller's videos closest to the query, best first, and the embedding model used."""
        top_k = _top_k(query.top_k)
        filters = _filters(query, caller)
        model = await self.embedding_model()
        index = await self.index()
        columns: tuple[Column, ...] = ("video",)
        match query.query:
            case TextInput():
                columns = ("video", "prompt")
                vector = (await self._embedder.embed(EmbedQuery(query.query, model=model))).vector
            case JobInput(job_id=job_id):
                check_length("job_id", job_id, MAX_JOB_ID_CHARS)
                entry = await index.entry(job_id)
                if entry is None or (filters.tenant is not None and entry.tenant != filters.tenant):
                    raise NotFound(f"job_id: job {job_id!r} is not in the search index")
                vector = entry.video
            case _:
                vector = (
                    await self._embedder.embed(EmbedQuery(query.query, model=model, caller=caller))
                ).vector
        found = await asyncio.gather(*(index.search(vector, c, filters, top_k) for c in columns))
        hits = merge(found, top_k)
        kept = await asyncio.gather(*(self._exists(hit.job_id) for hit in hits))
        gone = [hit.job_id for hit, exists in zip(hits, kept, strict=True) if not exists]
        if gone:  # deleted while the index was away, or past the queue's retention: forget them now
            await index.remove(gone)
        return [hit for hit, exists in zip(hits, kept, strict=True) if exists], model

    async def _exists(self, job_id: str) -> bool:
        try:
            await self._jobs(job_id)
        except JobNotFound:
            return False
        return True


def _top_k(top_k: int) -> int:
    if not 0 <= top_k <= MAX_TOP_K:
        raise InvalidRequest("top_k", f"must be within 1..{MAX_TOP_K} (0: {DEFAULT_TOP_K}), got {top_k}")
    return top_k or DEFAULT_TOP_K


def _filters(query: SearchQuery, caller: Caller) -> Filters:
    if len(query.models) > MAX_MODELS:
        raise InvalidRequest("models", f"at most {MAX_MODELS} models, got {len(query.models)}")
    for model in query.models:
        check_length("models", model, MAX_NAME_CHARS)
    after, before = query.created_after, query.created_before
    if after is not None and before is not None and before <= after:
        raise InvalidRequest("created_before", "must be later than created_after")
    return Filters(tenant=caller.tenant, models=query.models, created_after=after, created_before=before)
