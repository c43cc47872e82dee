"""Real Redis and Triton servers as child processes, that a test can stop, kill and restart.

    with RedisServer(aof_dir=tmp_path) as redis_server:
        ...                             # redis_server.url; redis_server.kill(); redis_server.start()

``ChildServer`` is what they share (and ``harness.s3.S3Server``): start the command, wait for the
line that says it is ready, SIGTERM on the way out.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from moviola.testing import free_port, free_ports


class ChildServer:
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


class RedisServer(ChildServer):
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


class TritonServer(ChildServer):
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
