"""The video index on LanceDB: a folder on local disk (embedded) or a prefix on S3 (gateways share it).

LanceDB is embedded (no server to run): the index is Lance files under ``uri``, read and
written by every process that opens it. On S3 that is what makes the index shared and lets it
grow past one machine: each gateway reads the latest version before each search
(``read_consistency_interval=0``), and writers commit new versions. Commits on one index are
serialised by a ``WriteLock`` (a Redis lock for gateways), because not every S3 server offers
the conditional writes Lance's own commit protocol relies on. docs/search.md says why LanceDB.

Every lancedb/object-store error becomes ``Unavailable`` here (inputs are checked before).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import numpy as np

from moviola.errors import Unavailable
from moviola.search.index import Column, Filters, Hit, IndexEntry, Vector

T = TypeVar("T")
#: Lance's column names for the two vectors.
_COLUMNS: dict[Column, str] = {"video": "video", "prompt": "prompt_vector"}
#: Seconds a caller is told to wait when the index cannot be reached.
RETRY_AFTER = 2.0


class WriteLock(Protocol):
    """Held around every commit to the index: one writer at a time across all processes."""

    def hold(self) -> contextlib.AbstractAsyncContextManager[None]: ...


class LocalLock:
    """One process's writers (the embedded server)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


def table_name(embedding_model: str) -> str:
    """One table per embedding model: vectors of two models are never compared.

    >>> table_name("tiny-siglip2")
    'videos_tiny_siglip2'
    """
    return "videos_" + re.sub(r"[^A-Za-z0-9_]", "_", embedding_model)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def where(filters: Filters) -> str | None:
    """The SQL filter of ``filters`` (values quoted), or None.

    >>> where(Filters(tenant="acme", models=("a", "b'c"), created_after=5.0))
    "tenant = 'acme' AND model IN ('a', 'b''c') AND created_at >= 5.0"
    """
    clauses = []
    if filters.tenant is not None:
        clauses.append(f"tenant = {_quoted(filters.tenant)}")
    if filters.models:
        clauses.append(f"model IN ({', '.join(_quoted(m) for m in filters.models)})")
    if filters.created_after is not None:
        clauses.append(f"created_at >= {float(filters.created_after)!r}")
    if filters.created_before is not None:
        clauses.append(f"created_at < {float(filters.created_before)!r}")
    return " AND ".join(clauses) or None


class LanceIndex:
    def __init__(
        self,
        uri: str,
        embedding_model: str,
        lock: WriteLock,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.location = uri
        self._uri, self._options = uri, storage_options or {}
        self._name = table_name(embedding_model)
        self._lock = lock
        self._db: Any = None
        self._table: Any = None

    async def _call(self, work: Callable[[], T]) -> T:
        """Run blocking lancedb work off the event loop; its errors become ``Unavailable``."""
        try:
            return await asyncio.to_thread(work)
        except Exception as exc:  # lancedb raises OSError, RuntimeError, ValueError... for I/O alike
            raise Unavailable(
                f"the search index at {self.location} cannot be used: {exc}", retry_after=RETRY_AFTER
            ) from exc

    def _connect(self) -> Any:
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(
                self._uri, storage_options=self._options, read_consistency_interval=timedelta(0)
            )
        return self._db

    def _open(self) -> Any:
        """The table, or None before the first row was added anywhere."""
        if self._table is None:
            db = self._connect()
            if self._name not in db.list_tables().tables:
                return None
            self._table = db.open_table(self._name)
        return self._table

    def _create(self, dimension: int) -> Any:
        import pyarrow as pa

        vector = pa.list_(pa.float32(), dimension)
        schema = pa.schema(
            [
                pa.field("job_id", pa.string()),
                pa.field("tenant", pa.string()),
                pa.field("model", pa.string()),
                pa.field("created_at", pa.float64()),
                pa.field("prompt", pa.string()),
                pa.field("video", vector),
                pa.field("prompt_vector", vector),
            ]
        )
        self._table = self._connect().create_table(self._name, schema=schema, exist_ok=True)
        return self._table

    async def add(self, entries: Sequence[IndexEntry]) -> None:
        if not entries:
            return
        rows = [
            {
                "job_id": e.job_id,
                "tenant": e.tenant,
                "model": e.model,
                "created_at": e.created_at,
                "prompt": e.prompt,
                "video": e.video.astype(np.float32).tolist(),
                "prompt_vector": e.prompt_vector.astype(np.float32).tolist(),
            }
            for e in entries
        ]

        def write() -> None:
            table = self._open() or self._create(len(rows[0]["video"]))
            (
                table.merge_insert("job_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(rows)
            )

        async with self._lock.hold():
            await self._call(write)

    async def remove(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        predicate = f"job_id IN ({', '.join(_quoted(j) for j in job_ids)})"
        async with self._lock.hold():
            await self._call(functools.partial(self._delete, predicate))

    def _delete(self, predicate: str) -> int:
        table = self._open()
        if table is None:
            return 0
        return int(table.delete(predicate).num_deleted_rows)

    async def remove_before(self, created_before: float) -> int:
        async with self._lock.hold():
            return await self._call(functools.partial(self._delete, f"created_at < {created_before!r}"))

    async def search(self, vector: Vector, column: Column, filters: Filters, limit: int) -> list[Hit]:
        def find() -> list[dict[str, Any]]:
            table = self._open()
            if table is None:
                return []
            query = (
                table.search(vector.astype(np.float32), vector_column_name=_COLUMNS[column])
                .metric("cosine")
                .limit(limit)
            )
            predicate = where(filters)
            if predicate is not None:
                query = query.where(predicate, prefilter=True)
            rows: list[dict[str, Any]] = query.to_list()
            return rows

        return [
            Hit(
                job_id=row["job_id"],
                score=1.0 - float(row["_distance"]),
                matched=column,
                model=row["model"],
                prompt=row["prompt"],
                created_at=float(row["created_at"]),
                tenant=row["tenant"],
            )
            for row in await self._call(find)
        ]

    async def entry(self, job_id: str) -> IndexEntry | None:
        def read() -> list[dict[str, Any]]:
            table = self._open()
            if table is None:
                return []
            rows: list[dict[str, Any]] = (
                table.search().where(f"job_id = {_quoted(job_id)}").limit(1).to_list()
            )
            return rows

        rows = await self._call(read)
        if not rows:
            return None
        row = rows[0]
        return IndexEntry(
            job_id=row["job_id"],
            tenant=row["tenant"],
            model=row["model"],
            created_at=float(row["created_at"]),
            prompt=row["prompt"],
            video=np.asarray(row["video"], dtype=np.float32),
            prompt_vector=np.asarray(row["prompt_vector"], dtype=np.float32),
        )

    async def count(self) -> int:
        def rows() -> int:
            table = self._open()
            return 0 if table is None else int(table.count_rows())

        return await self._call(rows)
