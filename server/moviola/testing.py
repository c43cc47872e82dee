"""Run a real ``moviola serve`` process: for tests, the demo and the benchmarks.

    with ServerProcess(["--data-dir", str(tmp)]) as server:
        client = Client(server.address)

The server listens on a free port (``--port 0``); the address is read from its
log, and readiness is awaited through the gRPC health service, not by sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


class ServerProcess:
    def __init__(
        self, args: list[str] | None = None, *, log_path: Path | None = None, ready_timeout: float = 120.0
    ):
        self.args = args or []
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.address = ""
        self.log_lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._port_known = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "moviola.client.cli", "serve", "--port", "0", *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        if not self._port_known.wait(self.ready_timeout) or not self.address:
            self.stop()
            raise RuntimeError("moviola serve did not start:\n" + "".join(self.log_lines[-40:]))
        self.wait_serving()
        return self

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        log = self.log_path.open("a") if self.log_path else None
        for line in stream:
            self.log_lines.append(line)
            if log:
                log.write(line)
                log.flush()
            if not self.address and (match := _LISTENING.search(line)):
                self.address = f"{match.group(1)}:{match.group(2)}"
                self._port_known.set()
        stream.close()
        self._port_known.set()  # the process ended; start() reports it
        if log:
            log.close()

    def wait_serving(self) -> None:
        """Block until the health service reports SERVING (the model is loaded)."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=self.ready_timeout)  # type: ignore[attr-defined]
            for response in watch:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return

    def terminate(self) -> None:
        """Send SIGTERM: the server drains."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def stop(self, timeout: float = 60.0) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None if self._proc is None else self._proc.returncode
        self.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
