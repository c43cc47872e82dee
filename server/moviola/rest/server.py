"""The REST face's HTTP server: uvicorn on the process's own event loop, beside the gRPC server.

In the same process and loop as gRPC, the REST routes call the same ``JobService`` object (its
queue, auth file, quotas and metrics) with no hop between them, and a gateway pod stays one
process with one composition root. The socket is bound here, without SO_REUSEPORT, so a port in
use fails the start with a clear message, like the gRPC port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the process's own handlers drain it (runtime/signals.py)
        yield


class HttpFace:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(exc.errno, f"HTTP port {port} is in use") from exc
            raise
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._socket.listen(128)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]), name="http")
        while not self._server.started and not self._task.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # raises why it could not start

    def close(self) -> None:
        """Let the port go before serving (a start that failed while the process was being built)."""
        self._socket.close()

    async def stop(self, grace: float) -> None:
        """Stop taking connections; open ones (SSE streams) get ``grace`` seconds, then are closed."""
        if self._task is None:
            self._socket.close()
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._server.force_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
        self._socket.close()
