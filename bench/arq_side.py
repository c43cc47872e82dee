"""The baseline's side of bench/scheduler.py, run in arq's own environment (``.venv-arq``: arq pins
redis-py below 6, which Moviola no longer does): two arq workers and the callers, on one redis-server.

    .venv-arq/bin/python bench/arq_side.py REDIS_URL POLL LATENCY_JOBS THROUGHPUT_JOBS REDIS_PID [work]

``work``: the workers' job does the work a no-op Moviola job does (``arq_worker.py``).

Prints one JSON object: dispatch latencies (s), throughput (jobs/s) and CPU per job (ms) by process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import load
from arq import create_pool
from arq.connections import RedisSettings
from cpu import CpuMeter

HERE = Path(__file__).resolve().parent


async def run(
    url: str, latency_jobs: int, throughput_jobs: int, meter: CpuMeter
) -> tuple[list[float], float]:
    pool = await create_pool(RedisSettings.from_dsn(url))
    latencies = []
    for _ in range(latency_jobs):
        sent = time.time()
        job = await pool.enqueue_job("noop")
        assert job is not None
        started: float = await job.result(timeout=30, poll_delay=0.001)
        latencies.append(started - sent)

    async def one() -> None:
        job = await pool.enqueue_job("noop")
        assert job is not None
        await job.result(timeout=60, poll_delay=0.001)

    rate = await load.throughput(one, throughput_jobs, meter)
    await pool.aclose()
    return latencies, rate


def main() -> int:
    url, poll, latency_jobs, throughput_jobs, redis_pid = sys.argv[1:6]
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "arq_worker.py"), url, poll, *sys.argv[6:7]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    meter = CpuMeter({"redis": int(redis_pid)} | {f"worker {i}": p.pid for i, p in enumerate(workers)})
    try:
        import uvloop

        latencies, rate = uvloop.run(run(url, int(latency_jobs), int(throughput_jobs), meter))
    finally:
        for p in workers:
            p.terminate()
            p.wait(30)
    print(json.dumps({"latencies": latencies, "rate": rate, "cpu": meter.per_job(int(throughput_jobs))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
