"""Running a process until SIGTERM or SIGINT, then draining it; a process that fails on its own exits non-zero."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Protocol

import click

from moviola.auth.keys import AuthFileError
from moviola.errors import MoviolaError

log = logging.getLogger("moviola")


class Process(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def drain(self, grace: float | None = None) -> None: ...

    async def failed(self) -> BaseException:
        """Return (never raise) the error that ended the process on its own; wait forever while healthy."""
        ...


class ProcessFailed(click.ClickException):
    """The process could not go on (its supervisor should restart it): exit code 1."""


async def run_until_signalled(make: Callable[[], Process]) -> None:
    """Start; on SIGTERM or SIGINT drain (or, while still starting, just stop); stop on a failure."""
    process = make()  # inside the loop: gRPC's aio server binds to the running loop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload = getattr(process, "reload", None)
    if reload is not None:  # servers re-read their auth file on SIGHUP
        loop.add_signal_handler(signal.SIGHUP, reload)
    starting = asyncio.create_task(process.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopped while starting")
        starting.cancel()
        await process.stop()
        return
    try:
        starting.result()  # a failed start raises here
    except BaseException:
        stopping.cancel()
        await process.stop()
        raise
    failing = asyncio.create_task(process.failed())
    await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
    if failing.done():
        error = failing.result()
        log.error("stopping: %s", error)
        stopping.cancel()
        await process.stop()
        raise ProcessFailed(f"the process cannot go on: {error}")
    failing.cancel()
    log.info("draining")
    await process.drain()
    log.info("stopped")


def run_process(make: Callable[[], Process]) -> None:
    import uvloop

    try:
        uvloop.run(run_until_signalled(make))
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    except MoviolaError as exc:  # a start-up check that failed (storage unreachable, credentials refused)
        raise click.ClickException(exc.message) from exc
    except AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # the configuration the process was built from (catalogue, adapters, aliases)
        raise click.ClickException(str(exc)) from exc
