"""The event loop's lag (``loop_lag.watch``), measured on a real loop that is blocked on purpose."""

from __future__ import annotations

import asyncio
import statistics
import time

from moviola import loop_lag


async def test_a_blocked_loop_shows_as_lag_and_an_idle_one_does_not() -> None:
    samples: list[float] = []
    warmed, stalled = asyncio.Event(), asyncio.Event()

    def observe(lag: float) -> None:
        samples.append(lag)
        if len(samples) >= 5:
            warmed.set()
        if lag > 0.1:
            stalled.set()

    watcher = asyncio.create_task(loop_lag.watch(observe, interval=0.02))
    try:
        async with asyncio.timeout(10):
            await warmed.wait()  # an idle loop first
            idle = list(samples)
            time.sleep(0.3)  # noqa: ASYNC251 - a handler that blocks the loop, what the metric is there to catch
            await stalled.wait()
    finally:
        watcher.cancel()
    assert statistics.median(idle) < 0.05, idle
    assert 0.25 <= samples[-1] < 2.0, samples  # the sample the block fell into ran about 0.3 s late
