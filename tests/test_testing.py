"""``moviola.testing``, what users start servers with in their own tests: ready means serving, exit means gone."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from moviola.client import Client
from moviola.testing import ServerProcess, free_port, free_ports


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status)  # type: ignore[attr-defined]


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_server_process_serves_on_a_free_port_then_drains_and_exits(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ServerProcess(["--redis-url", redis_url, "--accept-without-workers"], log_path=log)
    with server:
        assert server.running
        assert _health(server.address) == health_pb2.HealthCheckResponse.SERVING
        with Client(server.address, timeout=10) as client:
            assert client.list_models()  # it answers RPCs, not only health
        assert "listening on" in server.log_lines[server.wait_for_log("listening on")]
    assert not server.running
    assert server.stop() == 0  # SIGTERM on the way out: a clean drain, not a kill
    assert _refused(server.address)
    assert "listening on" in log.read_text()


def test_a_server_that_cannot_start_raises_with_its_log() -> None:
    with pytest.raises(RuntimeError, match="did not start") as failed, ServerProcess(["--no-such-flag"]):
        pass
    assert "No such option" in str(failed.value)


def test_a_server_that_listens_but_never_serves_is_stopped_not_leaked() -> None:
    """It logs an address where nothing answers: ``start`` fails, and the process is not left running."""
    silent = f"import time; print('listening on 127.0.0.1:{free_port()}', flush=True); time.sleep(120)"
    server = ServerProcess(program=[sys.executable, "-c", silent], ready_timeout=10)
    with pytest.raises(RuntimeError, match="did not become SERVING"):
        server.start()
    assert not server.running


def test_env_adds_and_removes_variables_for_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIOLA_TEST_REMOVED", "present")
    shows = (
        "import os; print(os.environ.get('MOVIOLA_TEST_ADDED'), os.environ.get('MOVIOLA_TEST_REMOVED')); "
        "print('ready: worker', flush=True); import time; time.sleep(120)"
    )
    env = {"MOVIOLA_TEST_ADDED": "yes", "MOVIOLA_TEST_REMOVED": ""}
    with ServerProcess(program=[sys.executable, "-c", shows], worker=True, env=env) as process:
        assert process.log_lines[0].split() == ["yes", "None"]
        process.kill()
        assert not process.running


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in [*ports, free_port()]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
