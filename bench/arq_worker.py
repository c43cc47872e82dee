"""The baseline's worker for bench/scheduler.py: an arq worker running a no-op job, one job at a time.

python bench/arq_worker.py REDIS_URL [POLL_SECONDS]

arq workers poll their queue (no blocking read); the interval bounds their throughput: with
``max_jobs = 1`` a worker starts at most one job per poll.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from arq import run_worker
from arq.connections import RedisSettings


async def noop(ctx: dict[str, Any]) -> float:
    """Does nothing; returns when it started, so the benchmark can measure dispatch latency."""
    return time.time()


class WorkerSettings:
    functions = [noop]  # noqa: RUF012 (arq's settings are class attributes)
    max_jobs = 1  # one job at a time, like a GPU worker
    poll_delay = 0.005  # arq's default (0.5 s) would make it look far slower; see POLL_SECONDS
    keep_result = 60


if __name__ == "__main__":
    WorkerSettings.redis_settings = RedisSettings.from_dsn(sys.argv[1])  # type: ignore[attr-defined]
    if len(sys.argv) > 2:
        WorkerSettings.poll_delay = float(sys.argv[2])
    run_worker(WorkerSettings)
