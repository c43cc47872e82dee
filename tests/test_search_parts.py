"""The search package's parts on their own: the Lance index on a folder, filters, merging, the indexer's acks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from moviola.errors import JobNotFound, Unavailable
from moviola.scheduler.base import Completion
from moviola.search.factory import index_uri, s3_options
from moviola.search.index import Filters, Hit, IndexEntry, merge
from moviola.search.indexer import Indexer
from moviola.search.lance import LanceIndex, LocalLock, where
from moviola.settings import StorageSettings


def entry(
    job_id: str, tenant: str = "acme", model: str = "m", at: float = 100.0, axis: int = 0
) -> IndexEntry:
    vector = np.zeros(8, dtype=np.float32)
    vector[axis] = 1.0
    return IndexEntry(job_id, tenant, model, at, f"prompt {job_id}", vector, vector[::-1].copy())


@pytest.fixture
def index(tmp_path: Path) -> LanceIndex:
    return LanceIndex(str(tmp_path / "index"), "tiny-siglip2", LocalLock())


async def test_adding_a_job_twice_keeps_one_row_and_search_filters(index: LanceIndex) -> None:
    assert await index.search(np.ones(8, dtype=np.float32), "video", Filters(tenant="acme"), 5) == []
    await index.add([entry("a", axis=0), entry("b", axis=1, model="n", at=200.0), entry("c", tenant="o'x")])
    await index.add([entry("a", axis=2)])
    assert await index.count() == 3
    stored = await index.entry("a")
    assert stored is not None
    assert int(np.argmax(stored.video)) == 2
    query = np.eye(8, dtype=np.float32)[2]
    hits = await index.search(query, "video", Filters(tenant="acme"), 5)
    assert [h.job_id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(1.0)
    assert hits[1].score == pytest.approx(0.0, abs=1e-6)
    assert [h.job_id for h in await index.search(query, "video", Filters(tenant="o'x"), 5)] == ["c"]
    assert [h.job_id for h in await index.search(query, "video", Filters("acme", ("n",)), 5)] == ["b"]
    later = Filters("acme", created_after=150.0)
    assert [h.job_id for h in await index.search(query, "video", later, 5)] == ["b"]
    assert await index.remove_before(150.0) == 2
    await index.remove(["b", "unknown"])
    assert await index.count() == 0


def test_filter_values_are_quoted() -> None:
    sql = where(Filters(tenant="x' OR '1'='1", models=("m",), created_before=5.0))
    assert sql == "tenant = 'x'' OR ''1''=''1' AND model IN ('m') AND created_at < 5.0"
    assert where(Filters(tenant=None)) is None


def test_merge_keeps_each_job_once_by_its_best_score() -> None:
    def hit(job: str, score: float, matched: str) -> Hit:
        return Hit(job, score, matched, "m", "p", 0.0, "")  # type: ignore[arg-type]

    merged = merge([[hit("a", 0.2, "video"), hit("b", 0.5, "video")], [hit("a", 0.9, "prompt")]], 10)
    assert [(h.job_id, h.matched) for h in merged] == [("a", "prompt"), ("b", "video")]
    assert len(merge([[hit("a", 0.2, "video"), hit("b", 0.5, "video")]], 1)) == 1


def test_index_locations_and_s3_options(tmp_path: Path) -> None:
    assert index_uri(f"file://{tmp_path}/i") == f"{tmp_path}/i"
    assert index_uri("s3://bucket/search/") == "s3://bucket/search"
    with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
        index_uri("gs://bucket/x")
    options = s3_options(StorageSettings(s3_endpoint="http://127.0.0.1:9000", s3_region="eu-west-1"))
    assert options == {
        "aws_endpoint": "http://127.0.0.1:9000",
        "allow_http": "true",
        "aws_region": "eu-west-1",
    }
    assert s3_options(StorageSettings(s3_endpoint=None, s3_region=None)) == {}


class Feed:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def completions(self, wait: float) -> list[Completion]:
        return []

    async def ack_completions(self, tokens: Sequence[str]) -> None:
        self.acked.extend(tokens)


class Search:
    def __init__(self) -> None:
        self.added: list[IndexEntry] = []

    async def embedding_model(self) -> str:
        return "m"

    async def add(self, entries: Sequence[IndexEntry]) -> None:
        self.added.extend(entries)


class Jobs:
    """A queue whose ``get`` fails as each job id says."""

    async def get(self, job_id: str) -> object:
        if job_id == "gone":
            raise JobNotFound(job_id)
        raise Unavailable("Redis is unreachable", retry_after=1.0)


async def test_the_indexer_acknowledges_what_it_is_done_with_and_keeps_what_may_work_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("moviola.search.indexer.PAUSE", 0.0)
    feed, search = Feed(), Search()
    indexer = Indexer(feed, Jobs(), None, search)  # type: ignore[arg-type]
    await indexer.index([Completion("1-0", "gone"), Completion("2-0", "away")])
    assert feed.acked == ["1-0"]  # deleted before indexing: done; Redis away: left for a retry
    assert search.added == []


async def test_the_memory_queue_hands_a_completion_again_until_it_is_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from helpers import REQUEST

    from moviola.jobs import Completed, Timings
    from moviola.scheduler.memory import MemoryJobQueue

    queue = MemoryJobQueue()
    queue.add_worker(REQUEST.model)
    assert await queue.completions(0.01) == []  # the indexer starts listening
    record, _ = await queue.submit(REQUEST)
    other, _ = await queue.submit(REQUEST)
    for _ in range(2):
        assignment = await queue.take(REQUEST.model)
        done = Completed(f"file:///{assignment.job_id}.mp4", 16, 16, 1, 8, 1, "m", Timings(), 1)
        await queue.finish(assignment, done, 0.1)
    first = await queue.completions(0.01)
    assert [c.job_id for c in first] == [record.id, other.id]
    assert await queue.completions(0.01) == []  # handed out a moment ago: not yet again
    monkeypatch.setattr("moviola.scheduler.memory_completions.REHAND", 0.0)
    await queue.ack_completions([first[0].token])
    assert [c.job_id for c in await queue.completions(0.01)] == [other.id]
    await queue.ack_completions([other.id])
    assert await queue.completions(0.01) == []
