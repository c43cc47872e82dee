"""The baseline's worker for bench/scheduler.py: an arq worker running a no-op job, one job at a time.

python bench/arq_worker.py REDIS_URL [POLL_SECONDS [work]]

With ``work`` the job does what a no-op Moviola job still does (``job_work.py``: its MP4, images and
their durable write), on a thread as Moviola's pipeline thread does: the like-for-like baseline.

arq workers poll their queue (no blocking read); the interval bounds their throughput: with
``max_jobs = 1`` a worker starts at most one job per poll.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from arq import run_worker
from arq.connections import RedisSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))  # moviola.mp4, for job_work
import job_work

#: The job's own work (None: none), done on this thread, one job at a time.
PIPELINE: ThreadPoolExecutor | None = None
WHERE = Path()


async def noop(ctx: dict[str, Any]) -> float:
    """Does nothing (or the job's work, ``work``); returns when it started, so the benchmark can measure
    dispatch latency."""
    started = time.time()
    if PIPELINE is not None:
        await asyncio.get_running_loop().run_in_executor(PIPELINE, job_work.run, WHERE, uuid.uuid4().hex)
    return started


class WorkerSettings:
    functions = [noop]  # noqa: RUF012 (arq's settings are class attributes)
    max_jobs = 1  # one job at a time, like a GPU worker
    poll_delay = 0.005  # arq's default (0.5 s) would make it look far slower; see POLL_SECONDS
    keep_result = 60


if __name__ == "__main__":
    WorkerSettings.redis_settings = RedisSettings.from_dsn(sys.argv[1])  # type: ignore[attr-defined]
    if len(sys.argv) > 2:
        WorkerSettings.poll_delay = float(sys.argv[2])
    if sys.argv[3:] == ["work"]:
        PIPELINE, WHERE = ThreadPoolExecutor(max_workers=1), job_work.folder()
    run_worker(WorkerSettings)
