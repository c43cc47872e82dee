"""Run a real ``moviola serve`` process: for tests, the demo and the benchmarks.

    with ServerProcess(["--data-dir", str(tmp)]) as server:
        client = Client(server.address)

The server listens on a free port (``--port 0``); the address is read from its
log, and readiness is awaited through the gRPC health service, not by sleeping.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


class ServerProcess:
    """``python -m moviola.runtime serve`` by default; ``program`` runs something else that logs "listening on" (a gateway)
    or, with ``worker=True``, "ready: worker" (a worker has no port)."""

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
        if not self._port_known.wait(self.ready_timeout) or not self.address:
            self.stop()
            raise RuntimeError(f"{' '.join(command[:4])} did not start:\n" + "".join(self.log_lines[-40:]))
        if not self.worker:
            self.wait_serving()
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
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all are held open while choosing (a closed one may come back)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class _ChildServer:
    """A server process the tests start, stop, kill and restart; ready once its output shows ``ready_line``."""

    name = ""
    ready_line = ""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        #: Its output so far (this run).
        self.lines: list[str] = []

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str] | None:
        return None

    def start(self, timeout: float = 120.0) -> Self:
        self.lines = []
        self._proc = subprocess.Popen(
            self._command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self._environment(),
        )
        ready = threading.Event()

        def read(stream: IO[str]) -> None:
            for line in stream:
                self.lines.append(line)
                if self.ready_line in line:
                    ready.set()
            stream.close()
            ready.set()

        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        ready.wait(timeout)
        if self._proc.poll() is not None or not any(self.ready_line in line for line in self.lines):
            self.kill()
            raise RuntimeError(f"{self.name} did not start:\n" + "".join(self.lines[-60:]))
        return self

    #: Seconds ``stop`` waits after SIGTERM before it kills.
    stop_grace = 30.0

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM), killing it if it takes longer than ``stop_grace``."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._join()

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(30)
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(10)
            self._reader = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisServer(_ChildServer):
    """A real ``redis-server`` on a free port, that a test can stop (the AOF is flushed), kill and restart.

    ``aof_dir`` turns on the append-only file (``appendfsync everysec``), as in production.
    """

    name = "redis-server"
    ready_line = "Ready to accept connections"

    def __init__(
        self,
        *,
        aof_dir: Path | None = None,
        port: int | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        acl: tuple[str, str] | None = None,
    ) -> None:
        """``tls``: (certificate, key, CA) to serve only TLS; ``acl``: (user, password), the only user."""
        super().__init__()
        self.port = port or free_port()
        self.aof_dir = aof_dir
        self.tls = tls
        self.acl = acl

    @property
    def url(self) -> str:
        """The URL a client uses: ``rediss://`` with the CA when TLS, with the ACL user's password."""
        login = f"{self.acl[0]}:{self.acl[1]}@" if self.acl else ""
        if self.tls is not None:
            return f"rediss://{login}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[2]}"
        return f"redis://{login}127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        args = ["redis-server", "--bind", "127.0.0.1", "--save", ""]
        if self.tls is not None:
            cert, key, ca = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            args += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        if self.acl is not None:
            user, password = self.acl
            # Each word its own argument: redis-server joins the words after an option into its value.
            args += ["--user", "default", "off", "--user", user, "on", f">{password}", "~*", "&*", "+@all"]
        if self.aof_dir is not None:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.aof_dir)]
        else:
            args += ["--appendonly", "no"]
        return [*args, "--maxmemory-policy", "noeviction"]


def _triton_home() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise RuntimeError("tritonserver comes from the nvidia-pytriton wheel: `make install` installs it")
    return Path(spec.origin).parent / "tritonserver"


class TritonServer(_ChildServer):
    """The real ``tritonserver`` (from the nvidia-pytriton wheel) on free ports, stoppable and restartable.

    The backend stub for this interpreter is copied next to the wheel's Python backend; the stub finds the environment through the ``python3`` first on PATH and needs this
    interpreter's libpython first on LD_LIBRARY_PATH.
    """

    name = "tritonserver"
    ready_line = "Started GRPCInferenceService"

    def __init__(self, repository: Path, models: list[str]) -> None:
        super().__init__()
        self.repository = repository
        self.models = models
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _backends(self) -> Path:
        home = _triton_home()
        backends = home / "backends"
        # The stub's libraries are found relative to the wheel (RPATH), so it goes next to the backend there.
        target = backends / "python" / "triton_python_backend_stub"
        if not target.exists():
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            shutil.copy2(home / "python_backend_stubs" / version / target.name, target)
        return backends

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libdir = str(sysconfig.get_config_var("LIBDIR"))
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        env["HF_HUB_OFFLINE"] = "1"
        return env

    def _command(self) -> list[str]:
        return [
            str(_triton_home() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends()}",
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in self.models),
            "--grpc-address=127.0.0.1",
            "--http-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}",
            "--pinned-memory-pool-byte-size=0",
            "--exit-on-error=true",
        ]

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing, as when it hangs."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)
