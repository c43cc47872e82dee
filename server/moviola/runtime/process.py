"""What every server process shares: a lifecycle, a start that cleans up after itself, ``async with``.

``FrontProcess`` (the embedded server, a gateway) and ``WorkerProcess`` fill in ``_start``,
``_stop`` and ``drain``; ``runtime/signals.py`` runs any of them until SIGTERM.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from moviola.lifecycle import Lifecycle, State


class Process:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    async def drain(self, grace: float | None = None) -> None:
        """SIGTERM: take no new work, let accepted work finish within the grace period, then stop."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start; a start that fails stops whatever it had started, then raises."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Take no more calls (DRAINING), stop everything, STOPPED. Safe to call again."""
        if self.lifecycle.state is State.STOPPED:
            return
        if self.lifecycle.state is not State.DRAINING:
            await self.lifecycle.set(State.DRAINING)
        await self._stop()
        await self.lifecycle.set(State.STOPPED)

    async def failed(self) -> BaseException:
        """The error that ended the process on its own (returned, never raised); waits while it serves."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
