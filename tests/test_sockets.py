"""What each process listens on with default settings: this host only, unless the operator says otherwise."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import psutil
from processes import worker

from moviola.testing import ServerProcess, free_port


def _listening(server: ServerProcess) -> set[tuple[str, int]]:
    """Every TCP socket the process (and its children) listens on."""
    process = psutil.Process(server.pid)
    found = set()
    for each in [process, *process.children(recursive=True)]:
        for connection in each.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN:
                found.add((connection.laddr.ip, connection.laddr.port))
    return found


def _loopback(sockets: set[tuple[str, int]]) -> bool:
    """Whether every socket is on a loopback address (gRPC binds IPv4 ones as ``::ffff:127.0.0.1``)."""
    for ip, _ in sockets:
        address = ipaddress.ip_address(ip)
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if not (mapped or address).is_loopback:
            return False
    return True


def test_the_embedded_server_listens_on_this_host_only(cache_dir: Path, tmp_path: Path) -> None:
    metrics, http = free_port(), free_port()
    args = ["--data-dir", str(tmp_path), "--cache-dir", str(cache_dir)]
    with ServerProcess([*args, "--metrics-port", str(metrics), "--http-port", str(http)]) as server:
        sockets = _listening(server)
    ports = {port for _, port in sockets}
    assert {metrics, http, int(server.address.rsplit(":", 1)[1])} <= ports
    assert _loopback(sockets), sockets


def test_a_gateway_and_a_worker_listen_on_this_host_only(redis_url: str, tmp_path: Path) -> None:
    gateway_metrics, worker_metrics, http = free_port(), free_port(), free_port()
    gateway_args = [
        "--redis-url",
        redis_url,
        "--metrics-port",
        str(gateway_metrics),
        "--http-port",
        str(http),
    ]
    with (
        ServerProcess(gateway_args) as gateway,
        worker(redis_url, tmp_path, "w", "--metrics-port", str(worker_metrics)) as running,
    ):
        at_gateway, at_worker = _listening(gateway), _listening(running)
    assert {gateway_metrics, http} <= {port for _, port in at_gateway}
    assert _loopback(at_gateway), at_gateway
    assert at_worker == {("127.0.0.1", worker_metrics)}  # a worker serves nothing but its metrics


def test_a_workers_metrics_are_public_when_asked(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    with worker(
        redis_url, tmp_path, "w", "--metrics-port", str(port), "--metrics-host", "0.0.0.0"
    ) as running:
        assert _listening(running) == {("0.0.0.0", port)}
