"""Idle workers: what a job costs Redis as a model's fleet of idle workers grows (Redis mode).

N workers of one model (the real ``RedisClaims``, each on its own connection, in this process) wait for
work; jobs are submitted one at a time, each taken by one of them and finished at once. Reported per
job: scripts Redis ran (SUBMIT, the TAKE that starts it, FINISH, and any TAKE that found nothing),
stream reads (the workers' blocking ones and the scripts' own), Redis's CPU, and the wall time from
submit to finish; then the ratio of N idle workers to one. A queue whose every submit wakes every idle worker grows linearly in N; one
that wakes one worker stays flat.

    python bench/wake.py [--workers 1 8 32] [--jobs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import uvloop
from cpu import cpu_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import RedisServer
from helpers import REQUEST

from moviola.jobs import Failed, FailureCode
from moviola.scheduler.redis import Connection, RedisClaims, RedisFront
from moviola.settings import QueueSettings

MODEL = "bench-wake"


@dataclass(frozen=True)
class PerJob:
    scripts: float
    reads: float
    redis_cpu_ms: float
    wall_ms: float


async def measure(url: str, idle: int, jobs: int) -> PerJob:
    settings = QueueSettings(redis_url=url)
    gateway = Connection(settings, consumer="gateway")
    connections = [Connection(settings, consumer=f"w{i}") for i in range(idle)]
    front, fleet = RedisFront(gateway), [RedisClaims(c) for c in connections]
    finished: asyncio.Queue[str] = asyncio.Queue()

    async def work(claims: RedisClaims) -> None:
        while True:
            assignment = await claims.take(MODEL)
            await claims.finish(assignment, Failed(code=FailureCode.INTERNAL, message="no-op"), 0.0)
            finished.put_nowait(assignment.job_id)

    workers = [asyncio.create_task(work(claims)) for claims in fleet]
    control = aioredis.Redis.from_url(url)
    try:
        request = replace(REQUEST, model=MODEL)
        for _ in range(3):  # warm-up: every worker has made its groups and blocked
            await front.submit(request)
            await finished.get()
        while True:  # every worker blocked: polled, as only Redis knows
            if sum(1 for c in await control.client_list() if "b" in c["flags"]) >= idle:
                break
            await asyncio.sleep(0.01)
        await control.config_resetstat()
        pid = int((await control.info("server"))["process_id"])
        cpu, start = cpu_seconds(pid), time.perf_counter()
        for _ in range(jobs):
            await front.submit(request)
            await finished.get()
        wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
        stats: dict[str, Any] = await control.info("commandstats")
        scripts = stats["cmdstat_evalsha"]["calls"]
        reads = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("xread", "xreadgroup"))
        return PerJob(scripts / jobs, reads / jobs, cpu * 1000 / jobs, wall * 1000 / jobs)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for claims in fleet:
            await claims.leave(MODEL)
            await claims.close()
        await front.close()
        for connection in [gateway, *connections]:
            await connection.close()
        await control.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    results: dict[int, PerJob] = {}
    with RedisServer() as server:
        for idle in args.workers:
            redis.Redis.from_url(server.url).flushall()
            results[idle] = uvloop.run(measure(server.url, idle, args.jobs))
    print(f"jobs one at a time ({args.jobs} per row), N idle workers of one model; per job:")
    print(f"  {'workers':>7}  {'scripts':>7}  {'reads':>6}  {'Redis CPU':>10}  {'submit→finish':>13}")
    for idle, r in results.items():
        print(
            f"  {idle:7d}  {r.scripts:7.1f}  {r.reads:6.1f}  {r.redis_cpu_ms:7.2f} ms  {r.wall_ms:10.2f} ms"
        )
    base = results[min(results)]
    for idle, r in results.items():
        if idle != min(results):
            print(
                f"  ratio {idle} workers / {min(results)}: scripts {r.scripts / base.scripts:.2f}x   "
                f"Redis CPU {r.redis_cpu_ms / base.redis_cpu_ms:.2f}x   wall {r.wall_ms / base.wall_ms:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
