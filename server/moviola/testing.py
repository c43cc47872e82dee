"""Start a real Moviola server for your own tests: ``ServerProcess``, ``free_port``, ``free_ports``.

``ServerProcess`` runs ``python -m moviola.runtime serve`` as a child process on a free port
(``--port 0``; the address is read from its log), waits until the gRPC health service says
SERVING (not by sleeping), and on the way out sends SIGTERM, so the server drains as in
production::

    from moviola.client import Client
    from moviola.testing import ServerProcess

    with ServerProcess(["--data-dir", "/tmp/videos"]) as server, Client(server.address) as client:
        events = list(client.generate("a red fox running through snow", num_frames=5))
        assert events[-1].WhichOneof("kind") == "completed"

One server for a whole pytest session::

    @pytest.fixture(scope="session")
    def moviola_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with ServerProcess(["--data-dir", str(tmp_path_factory.mktemp("videos"))]) as server:
            yield server

Any ``moviola serve`` flag goes in the list. The embedded server (no ``--redis-url``) runs the
tiny model on the CPU and needs the ``[worker]`` extra; a gateway (``--redis-url``) does not.
``program=`` runs another command that logs "listening on HOST:PORT" (the ``moviola`` script),
and ``worker=True`` a worker, ready when it logs "ready: worker".

This module needs only what a gateway needs (grpcio and its health service): no pytest, no
test tools, no binaries.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
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
    """A Moviola server as a child process: ``start`` returns once it serves, ``stop`` drains it.

    ``args``: ``moviola serve`` flags (``--port 0`` is added unless ``worker``). ``program``: the
    command instead of ``python -m moviola.runtime serve``. ``env``: variables added to this
    process's environment for the server, or removed when set to "". ``log_path``: a file that
    gets its output too (``log_lines`` holds it either way). ``ready_timeout``: seconds to wait
    for the port and then for SERVING. A server that does not get there is stopped, and ``start``
    raises ``RuntimeError`` with the end of its log.
    """

    def __init__(
        self,
        args: list[str] | None = None,
        *,
        log_path: Path | None = None,
        ready_timeout: float = 120.0,
        program: list[str] | None = None,
        worker: bool = False,
        env: dict[str, str] | None = None,
    ):
        #: Variables added to (or, set to "", removed from) this process's environment for the server.
        self.env = env or {}
        self.args = args or []
        self.program = program or [
            sys.executable,
            "-m",
            "moviola.runtime",
            "worker" if worker else "serve",
        ]
        self.worker = worker
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.address = ""
        self.log_lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._port_known = threading.Event()
        self._reader: threading.Thread | None = None
        self._new_line = threading.Condition()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> ServerProcess:
        command = [*self.program, *([] if self.worker else ["--port", "0"]), *self.args]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env = {key: value for key, value in env.items() if value != "" or key not in self.env}
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
        failed = ""
        if not self._port_known.wait(self.ready_timeout) or not self.address:
            failed = "did not start"
        elif not self.worker:
            try:
                self.wait_serving()
            except (grpc.RpcError, RuntimeError) as exc:
                failed = f"did not become SERVING ({exc})"
        if failed:
            self.stop()  # never leave it running behind a failed ``with``
            raise RuntimeError(f"{' '.join(command[:4])} {failed}:\n" + "".join(self.log_lines[-40:]))
        return self

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        log = self.log_path.open("a") if self.log_path else None
        for line in stream:
            with self._new_line:
                self.log_lines.append(line)
                self._new_line.notify_all()
            if log:
                log.write(line)
                log.flush()
            if not self.address and (match := _LISTENING.search(line)):
                self.address = f"{match.group(1)}:{match.group(2)}"
                self._port_known.set()
            if self.worker and "ready: worker" in line:
                self.address = "worker"
                self._port_known.set()
        stream.close()
        self._port_known.set()  # the process ended; start() reports it
        if log:
            log.close()

    def wait_for_log(self, text: str, timeout: float = 60.0, *, after: int = 0) -> int:
        """Block until a log line (from index ``after`` on) contains ``text``; return its index."""

        def found() -> int | None:
            return next((i for i, line in enumerate(self.log_lines[after:], after) if text in line), None)

        with self._new_line:
            if not self._new_line.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no log line with {text!r} within {timeout}s")
            index = found()
            assert index is not None
            return index

    def wait_serving(self) -> None:
        """Block until the health service reports SERVING (the model is loaded)."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=self.ready_timeout)  # type: ignore[attr-defined]
            for response in watch:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        raise RuntimeError("the health service ended its watch before SERVING")

    def kill(self) -> None:
        """SIGKILL: no draining, no goodbye."""
        assert self._proc is not None
        self._proc.kill()
        self.wait(30)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for ``--http-port``, ``--metrics-port``)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all are held open while choosing (a closed one may come back)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
