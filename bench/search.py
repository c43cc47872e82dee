"""SearchVideos against LanceDB queried directly, on one index, in one run.

One embedded Moviola server (tiny SigLIP 2) with ``--search-index`` on a folder that holds
``--rows`` rows of another tenant (random unit vectors, written with LanceDB beforehand) and
the videos of ``--jobs`` real jobs of the caller. Per query, median milliseconds of:

- ``lancedb``: the same filtered top-10 vector search, straight on the table (what a team
  without Moviola's search would run, given vectors it computed itself);
- ``search-job``: ``SearchVideos(job_id)``: the stored vector of a job, searched (no embedding);
- ``search-text``: ``SearchVideos(text)``: the text embedded, both vector columns searched, the
  hits' jobs looked up;
- ``embed-text``: ``Embed(text)`` alone, to show what the text path spends embedding.

    python bench/search.py [--rows 20000] [--jobs 12] [--queries 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lancedb
import numpy as np

from moviola.client import Client
from moviola.search.index import IndexEntry
from moviola.search.lance import LanceIndex, LocalLock, table_name
from moviola.testing import ServerProcess

DIMENSION = 32  # the tiny SigLIP 2's


def fill(index: LanceIndex, rows: int, dimension: int, tenants: tuple[str, ...]) -> None:
    """``rows`` rows of random unit vectors, the tenants taking turns, added as Moviola adds them."""
    import asyncio

    rng = np.random.default_rng(0)
    for start in range(0, rows, 5000):
        vectors = rng.standard_normal((min(5000, rows - start), 2, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
        batch = [
            IndexEntry(f"r{start + i}", tenants[i % len(tenants)], "m", 1e9, f"caption {i}", v[0], v[1])
            for i, v in enumerate(vectors)
        ]
        asyncio.run(index.add(batch))


def timed(work: Callable[[], object], queries: int) -> float:
    times = []
    for _ in range(queries):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "index"
        fill(LanceIndex(str(folder), "tiny-siglip2", LocalLock()), args.rows, DIMENSION, ("other",))
        server = ServerProcess(["--data-dir", tmp, "--search-index", str(folder)])
        with server, Client(server.address, timeout=60) as client:
            jobs = [
                client.submit(f"a fox number {i}", num_inference_steps=2, num_frames=5).id
                for i in range(args.jobs)
            ]
            for job_id in jobs:
                list(client.watch(job_id))
            while len(client.search_videos(text="a fox", top_k=100).hits) < len(jobs):
                time.sleep(0.2)  # indexing follows completion
            table: Any = lancedb.connect(str(folder)).open_table(table_name("tiny-siglip2"))
            query = np.asarray(client.embed(text="a fox").vector, dtype=np.float32)

            def direct() -> object:
                return (
                    table.search(query, vector_column_name="video")
                    .metric("cosine")
                    .where("tenant = ''", prefilter=True)
                    .limit(10)
                    .to_list()
                )

            cells: dict[str, Callable[[], object]] = {
                "lancedb": lambda: direct(),
                "search-job": lambda: client.search_videos(job_id=jobs[0]),
                "search-text": lambda: client.search_videos(text="a fox running"),
                "embed-text": lambda: client.embed(text="a fox running"),
            }
            for work in cells.values():
                work()  # warm
            medians: dict[str, list[float]] = {name: [] for name in cells}
            for _ in range(3):  # rounds alternate, so that a noisy moment hits every cell
                for name, work in cells.items():
                    medians[name].append(timed(work, args.queries))
        real = real_size(Path(tmp) / "real", args.rows, args.queries)
    base = statistics.median(medians["lancedb"])
    print(f"{args.rows} rows of another tenant, {args.jobs} of the caller's; median ms per query of 3 rounds")
    print("| path | ms/query | vs lancedb |")
    print("|---|---|---|")
    for name, values in medians.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.2f} | {value / base:.2f}x |")
    print(
        f"LanceDB alone at SigLIP 2 base's 768 dimensions, {args.rows} rows: {real:.2f} ms/query (flat scan)"
    )


def real_size(folder: Path, rows: int, queries: int) -> float:
    """The flat filtered search at a real model's width, through Moviola's ``LanceIndex``."""
    import asyncio

    from moviola.search.index import Filters

    index = LanceIndex(str(folder), "siglip2", LocalLock())
    fill(index, rows, 768, ("t", "u"))
    query = np.random.default_rng(1).standard_normal(768).astype(np.float32)

    async def run() -> float:
        await index.search(query, "video", Filters(tenant="t"), 10)  # warm
        times = []
        for _ in range(queries):
            started = time.perf_counter()
            await index.search(query, "video", Filters(tenant="t"), 10)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    return asyncio.run(run())


if __name__ == "__main__":
    main()
