"""A process that fails on its own stops and exits non-zero, so that its supervisor restarts it."""

from __future__ import annotations

import asyncio

import pytest

from moviola.runtime.signals import ProcessFailed, run_until_signalled


class Failing:
    def __init__(self) -> None:
        self.stopped = False
        self.drained = False
        self.broken = asyncio.Event()

    async def start(self) -> None:
        asyncio.get_running_loop().call_soon(self.broken.set)

    async def stop(self) -> None:
        self.stopped = True

    async def drain(self, grace: float | None = None) -> None:
        self.drained = True

    async def failed(self) -> BaseException:
        await self.broken.wait()
        return RuntimeError("the worker for m stopped taking jobs")


async def test_a_process_whose_worker_dies_stops_and_fails() -> None:
    process = Failing()
    with pytest.raises(ProcessFailed) as info:
        await run_until_signalled(lambda: process)
    assert info.value.exit_code == 1
    assert "stopped taking jobs" in info.value.message
    assert process.stopped
    assert not process.drained
