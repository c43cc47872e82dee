"""Fair share: a second tenant's time-to-start while a first tenant has 1,000 jobs queued.

One redis-server, one gateway with an auth file (tenants ``acme`` and ``globex``) and one
worker (``moviola.runtime simulated-worker``: the real worker, a pipeline that pretends, 5 ms a
step). Time-to-start is submit to the job's STARTED event, for ``globex``'s one interactive job:

- ``idle``: nothing else queued;
- ``fair``: behind ``acme``'s backlog of 1,000 interactive jobs, submitted just before;
- ``fifo``: the same job submitted with ``acme``'s key, so that it queues behind the backlog in
  arrival order, as in a queue without fair share (every job one tenant's).

Between cells the backlog is cancelled. Each cell is run ``--rounds`` times; the table gives the
median seconds and the ratios fair / idle and fifo / fair.

    python bench/fairness.py [--backlog 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from moviola.auth import keys
from moviola.client import AsyncClient, RequestOptions
from moviola.testing import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import RedisServer

SMALL: RequestOptions = {"num_inference_steps": 1, "num_frames": 1, "width": 16, "height": 16}


async def time_to_start(client: AsyncClient) -> float:
    sent = time.time()
    job = await client.submit("the one job", **SMALL)
    async for event in client.watch(job.id):
        if event.HasField("started"):
            return event.time.ToNanoseconds() / 1e9 - sent
    raise RuntimeError(f"job {job.id} ended without starting")


async def cell(kind: str, acme: AsyncClient, globex: AsyncClient, backlog: int) -> float:
    queued = [
        (await acme.submit(f"backlog {i}", **SMALL)).id for i in range(backlog if kind != "idle" else 0)
    ]
    try:
        return await time_to_start(acme if kind == "fifo" else globex)
    finally:
        await asyncio.gather(*(acme.cancel(job_id) for job_id in queued))


async def run(
    address: str, acme_key: str, globex_key: str, backlog: int, rounds: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"idle": [], "fair": [], "fifo": []}
    async with (
        AsyncClient(address, api_key=acme_key) as acme,
        AsyncClient(address, api_key=globex_key) as globex,
    ):
        await time_to_start(globex)  # warm up: the model's first run
        for _ in range(rounds):
            for kind in results:
                results[kind].append(await cell(kind, acme, globex, backlog))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        auth_file = Path(tmp) / "auth.json"
        acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
        gateway_args = ["--redis-url", redis_server.url, "--auth-file", str(auth_file)]
        worker_args = ["--redis-url", redis_server.url, "--data-dir", tmp, "--step-seconds", "0.005"]
        worker_program = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
        with (
            ServerProcess([*gateway_args, "--max-queue-depth", str(args.backlog + 10)]) as gateway,
            ServerProcess(worker_args, program=worker_program, worker=True),
        ):
            results = asyncio.run(run(gateway.address, acme_key, globex_key, args.backlog, args.rounds))
    median = {kind: statistics.median(values) for kind, values in results.items()}
    print(
        f"second tenant's time-to-start, {args.backlog} jobs of another tenant queued ({args.rounds} rounds)"
    )
    print("| queue | seconds (median) |")
    print("|---|---|")
    for kind, value in median.items():
        print(f"| {kind} | {value:.3f} |")
    print(
        f"fair / idle: {median['fair'] / median['idle']:.2f}x; fifo / fair: {median['fifo'] / median['fair']:.0f}x"
    )


if __name__ == "__main__":
    main()
