"""The front's one lifecycle and the job service's use cases, on both queues.

What the redesign fixed: a failed start stops everything it had started, stop awaits every task,
both faces key on one error kind, and listing pages through the store in both orders.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from fakes import ScriptedPipeline

from moviola.api.status import CODES
from moviola.auth.caller import ANONYMOUS
from moviola.errors import FailedPrecondition, Kind
from moviola.lifecycle import State
from moviola.rest.errors import STATUSES
from moviola.runtime.embedded import EmbeddedServer
from moviola.runtime.front import FrontProcess
from moviola.runtime.gateway import GatewayServer
from moviola.runtime.worker import WorkerProcess
from moviola.settings import Settings
from moviola.testing import free_port
from moviola.validation import RequestDraft

SECRET = "whsec_" + base64.b64encode(b"moviola-test-webhook-secret-32by").decode()
#: The tasks a front runs while it serves.
FRONT_TASKS = {"webhooks", "search-indexer", "metrics", "retention", "redis-monitor"}


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _running(names: set[str]) -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name() in names and not t.done()]


def test_every_error_kind_has_a_grpc_code_and_an_http_status() -> None:
    assert set(CODES) == set(Kind) == set(STATUSES)
    assert STATUSES[Kind.UNAUTHENTICATED][0] == 401
    assert STATUSES[Kind.INTERNAL][0] == 500


async def test_a_start_that_fails_stops_what_it_started_and_frees_its_ports(
    tmp_path: Path, cache_dir: Path, redis_url: str
) -> None:
    # A search index with no embedding backend fails the start after gRPC, HTTP and the tasks run.
    settings = Settings.of(
        port=0,
        http_port=0,
        data_dir=tmp_path,
        cache_dir=cache_dir,
        redis_url=redis_url,
        search_index=str(tmp_path / "index"),
        webhook_secrets=(SECRET,),
    )
    gateway = GatewayServer(settings)
    assert gateway.front.http is not None
    ports = (gateway.port, gateway.front.http.port)
    with pytest.raises(FailedPrecondition, match="embedding backend"):
        async with gateway:
            pytest.fail("the start should have failed")
    assert gateway.lifecycle.state is State.STOPPED
    assert _running(FRONT_TASKS) == []
    assert [port for port in ports if not _free(port)] == []


@pytest_asyncio.fixture(params=["memory", "redis"])
async def process(
    request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> AsyncIterator[FrontProcess]:
    """A started front (the embedded server, or a gateway with a worker) with webhooks and a retention."""
    pipeline = ScriptedPipeline(block_at=None)
    options = {"webhook_secrets": (SECRET,), "video_retention": 3600.0, "metrics_port": 0}
    if request.param == "memory":
        settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=cache_dir, **options)
        async with EmbeddedServer(settings, loader=lambda s, _: pipeline) as embedded:
            yield embedded
        return
    settings = Settings.of(
        port=0,
        data_dir=tmp_path,
        cache_dir=cache_dir,
        redis_url=request.getfixturevalue("redis_url"),
        **options,
    )
    async with WorkerProcess(settings, loader=lambda s, _: pipeline), GatewayServer(settings) as gateway:
        yield gateway


async def test_stop_awaits_every_task_and_is_said_once(process: FrontProcess) -> None:
    started = _running(FRONT_TASKS)
    assert {"webhooks", "retention", "metrics"} <= set(started)
    assert process.lifecycle.state is State.READY
    await process.stop()
    assert _running(FRONT_TASKS) == []
    assert process.lifecycle.state.value == "stopped"
    await process.stop()  # the context's exit stops again: nothing left to do, no error


async def test_listing_pages_through_the_store_oldest_and_newest_first(process: FrontProcess) -> None:
    service = process.service
    made = [
        (await service.submit(RequestDraft(prompt=f"job {i}", num_inference_steps=1)))[0].record.id
        for i in range(5)
    ]
    oldest, more = await service.list_after(ANONYMOUS, limit=2, newest_first=False)
    assert [j.record.id for j in oldest] == made[:2]
    assert more
    rest, more = await service.list_after(ANONYMOUS, after=made[1], limit=3, newest_first=False)
    assert [j.record.id for j in rest] == made[2:]
    assert not more
    newest, more = await service.list_after(ANONYMOUS, after=made[3], limit=2)
    assert [j.record.id for j in newest] == [made[2], made[1]]
    assert more


async def test_a_gateway_whose_grpc_port_is_taken_lets_its_http_port_go(
    tmp_path: Path, redis_url: str
) -> None:
    http_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings.of(
            port=taken.getsockname()[1], http_port=http_port, data_dir=tmp_path, redis_url=redis_url
        )
        with pytest.raises(OSError, match="is in use"):
            GatewayServer(settings)
    assert _free(http_port)


def test_the_gateway_command_exits_non_zero_with_a_message_when_its_port_is_taken(
    tmp_path: Path, redis_url: str
) -> None:
    http_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "moviola.runtime", "serve", "--redis-url", redis_url]
        command += ["--port", str(port), "--http-port", str(http_port), "--data-dir", str(tmp_path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 1
    assert f"port {port} is in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert _free(http_port)
