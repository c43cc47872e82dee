"""Indexes every video as its job completes: frames and prompt embedded, one row in the index.

Runs in every gateway (and the embedded server) with ``--search-index``; the queue's
``CompletionFeed`` hands each completion to one of them. A completion whose video cannot be
embedded for good (deleted already, not in this storage) is logged and dropped; one that fails
because something is away (Triton, the index's storage) is left unacknowledged, so it is
retried (Redis: by any gateway after the reclaim time; embedded: after a second).
"""

from __future__ import annotations

import asyncio
import logging

from moviola.auth.caller import Caller
from moviola.embed.service import Embedder, EmbedQuery, JobInput, TextInput
from moviola.errors import JobNotFound, MoviolaError
from moviola.jobs import JobState
from moviola.metrics import Metrics
from moviola.scheduler.base import Completion, CompletionFeed, GatewayQueue
from moviola.search.index import IndexEntry
from moviola.search.service import VideoSearch

log = logging.getLogger(__name__)

#: Seconds one read of the feed waits for a completion.
WAIT = 1.0
#: Seconds before trying again after the embedder or the index was away.
PAUSE = 1.0


class Indexer:
    def __init__(
        self,
        feed: CompletionFeed,
        jobs: GatewayQueue,
        embedder: Embedder,
        search: VideoSearch,
        metrics: Metrics | None = None,
    ) -> None:
        self._feed, self._jobs, self._embedder, self._search = feed, jobs, embedder, search
        self._metrics = metrics

    async def run(self) -> None:
        while True:
            try:
                due = await self._feed.completions(WAIT)
            except MoviolaError as exc:  # Redis away: the gateway's health says so; try again
                log.warning("search indexer: cannot read completions: %s", exc.message)
                await asyncio.sleep(PAUSE)
                continue
            await self.index(due)

    async def index(self, due: list[Completion]) -> None:
        """Index these completions; acknowledge those done with (indexed, or never indexable)."""
        entries, done = [], []
        for completion in due:
            try:
                entry = await self._entry(completion.job_id)
            except MoviolaError as exc:
                if exc.retryable:
                    log.warning("search indexer: job %s later: %s", completion.job_id, exc.message)
                    continue
                log.warning("search indexer: job %s not indexed: %s", completion.job_id, exc.message)
                entry = None
            if entry is not None:
                entries.append(entry)
            done.append(completion.token)
        try:
            await self._search.add(entries)
            await self._feed.ack_completions(done)
        except MoviolaError as exc:
            log.warning("search indexer: %d videos wait: %s", len(entries), exc.message)
            await asyncio.sleep(PAUSE)
            return
        self._count(len(entries))
        if len(done) < len(due):
            await asyncio.sleep(PAUSE)

    async def _entry(self, job_id: str) -> IndexEntry | None:
        try:
            record = await self._jobs.get(job_id)
        except JobNotFound:
            return None  # deleted (or expired) before it was indexed
        if record.state is not JobState.COMPLETED:
            return None
        model = await self._search.embedding_model()
        owner = Caller(tenant=record.request.tenant)
        video = await self._embedder.embed(EmbedQuery(JobInput(job_id), model=model, caller=owner))
        text = record.request.prompt
        prompt = (
            await self._embedder.embed(EmbedQuery(TextInput(text), model=model)) if text.strip() else video
        )
        return IndexEntry(
            job_id=job_id,
            tenant=record.request.tenant,
            model=record.model,
            created_at=record.created_at,
            prompt=record.request.prompt,
            video=video.vector,
            prompt_vector=prompt.vector,
        )

    def _count(self, indexed: int) -> None:
        if self._metrics is not None and indexed:
            self._metrics.videos_indexed.inc(indexed)
