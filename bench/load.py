"""The throughput phase the scheduler benchmarks share (``scheduler.py``, ``arq_side.py``, ``floor.py``).

Standard library and ``cpu.py`` only: ``arq_side.py`` imports it in arq's own environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from cpu import CpuMeter

#: Concurrent callers in the throughput phase.
CONCURRENCY = 32


async def throughput(job: Callable[[], Awaitable[object]], jobs: int, meter: CpuMeter) -> float:
    """Jobs a second when ``CONCURRENCY`` callers each run ``job`` until ``jobs`` are done; ``meter``
    measures the CPU meanwhile."""
    remaining = jobs

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await job()

    meter.start()
    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    rate = jobs / (time.perf_counter() - start)
    meter.stop()
    return rate
