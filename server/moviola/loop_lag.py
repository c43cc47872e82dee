"""How late the event loop runs: the saturation signal of a process that serves from one asyncio loop.

A gateway short of CPU, or a handler that blocks its loop, runs every callback late: each stream's
next event, each Redis reply, each new call. ``watch`` sleeps ``interval`` over and over and reports
how much later than asked each sleep ended (``moviola_event_loop_lag_seconds``). CPU use says a
process is busy; this says its callers wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Seconds between samples: often enough to see a stall of a fraction of a second.
INTERVAL = 0.25


async def watch(observe: Callable[[float], None], interval: float = INTERVAL) -> None:
    """Report each sample's lag (seconds, never negative) to ``observe``, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))
