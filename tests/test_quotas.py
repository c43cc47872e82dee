"""Quotas and fair share per tenant, the same on both backends, and across two gateways on one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stacks import Stack, block_first_job, built_stack, events_of

from moviola.auth import keys
from moviola.client import AsyncClient, ResourceExhausted
from moviola.runtime.gateway import GatewayServer
from moviola.settings import Settings
from moviola.v1 import job_pb2 as pb

BACKENDS = pytest.mark.parametrize("backend", ["memory", "redis"])


def let_go(stack: Stack) -> None:
    stack.pipeline.block_at = None
    stack.pipeline.gate.set()


def started_at(events: list[pb.JobEvent]) -> int:
    return next(e.time.ToNanoseconds() for e in events if e.HasField("started"))


@BACKENDS
async def test_a_tenants_backlog_does_not_starve_another_tenants_job(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    async with (
        built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file, max_queue_depth=100) as stack,
        AsyncClient(stack.address, api_key=acme_key) as acme,
        AsyncClient(stack.address, api_key=globex_key) as globex,
    ):
        await block_first_job(stack, acme)
        backlog = [(await acme.submit(f"backlog {i}", num_inference_steps=1)).id for i in range(40)]
        theirs = await globex.submit("globex's one job", num_inference_steps=1)
        assert 1 <= (await globex.get(theirs.id)).queue_position <= 2  # it ties acme's next job, not its 40th
        assert (await acme.get(backlog[-1])).queue_position == 41  # acme's last moved back one
        let_go(stack)
        events = await events_of(globex, theirs.id)
        assert events[-1].WhichOneof("kind") == "completed"
        starts = [started_at(await events_of(acme, job_id)) for job_id in backlog]
        assert sum(1 for s in starts if s < started_at(events)) <= 1
        assert starts == sorted(starts)  # acme's own jobs keep their order


@BACKENDS
async def test_weights_share_the_worker_between_two_backlogs(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    heavy_key, light_key = keys.create_key(auth_file, "heavy"), keys.create_key(auth_file, "light")
    keys.set_limits(auth_file, "heavy", {"weight": 3})
    async with (
        built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file, max_queue_depth=100) as stack,
        AsyncClient(stack.address, api_key=heavy_key) as heavy,
        AsyncClient(stack.address, api_key=light_key) as light,
    ):
        await block_first_job(stack, heavy)
        jobs: dict[str, list[str]] = {"heavy": [], "light": []}
        for i in range(24):
            jobs["heavy"].append((await heavy.submit(f"heavy {i}", num_inference_steps=1)).id)
            jobs["light"].append((await light.submit(f"light {i}", num_inference_steps=1)).id)
        let_go(stack)
        clients = {"heavy": heavy, "light": light}
        order = sorted(
            [(started_at(await events_of(clients[t], j)), t) for t, ids in jobs.items() for j in ids]
        )
        first = [tenant for _, tenant in order[:16]]
        assert first.count("heavy") in (11, 12, 13)  # 3 to 1: 12 of the first 16


@BACKENDS
async def test_jobs_in_flight_are_limited_per_tenant(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    keys.set_limits(auth_file, "acme", {"in_flight": 2})
    async with (
        built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file, max_queue_depth=10) as stack,
        AsyncClient(stack.address, api_key=acme_key) as acme,
        AsyncClient(stack.address, api_key=globex_key) as globex,
    ):
        running = await block_first_job(stack, acme)
        queued = await acme.submit("second", num_inference_steps=1)
        with pytest.raises(ResourceExhausted) as refused:
            await acme.submit("third", num_inference_steps=1)
        assert "limit (2)" in refused.value.message
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1.0
        other = await globex.submit("another tenant is not limited", num_inference_steps=1)
        assert [j.request.prompt for j in (await acme.list_jobs())[0]] == [
            "second",
            "blocker",
        ]  # nothing half-made
        await acme.cancel(queued.id)  # a cancelled job no longer counts
        third = await acme.submit("third", num_inference_steps=1)
        let_go(stack)
        for job_id in (running.id, third.id):
            assert (await events_of(acme, job_id))[-1].WhichOneof("kind") == "completed"
        assert (await events_of(globex, other.id))[-1].WhichOneof("kind") == "completed"
        await acme.submit("finished jobs do not count", num_inference_steps=1)
        await acme.submit("nor this", num_inference_steps=1)


@BACKENDS
async def test_the_submit_rate_is_a_token_bucket_per_tenant(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    keys.set_limits(auth_file, "acme", {"rate": 0.5, "burst": 2})
    async with (
        built_stack(backend, request, tmp_path, cache_dir, auth_file=auth_file, max_queue_depth=10) as stack,
        AsyncClient(stack.address, api_key=acme_key) as acme,
        AsyncClient(stack.address, api_key=globex_key) as globex,
    ):
        for i in range(2):
            await acme.submit(f"burst {i}", num_inference_steps=1)
        with pytest.raises(ResourceExhausted) as refused:
            await acme.submit("over the rate", num_inference_steps=1)
        assert refused.value.retry_after is not None
        assert 0 < refused.value.retry_after <= 2.0
        assert "0.5 a second" in refused.value.message
        for i in range(3):
            await globex.submit(f"globex {i}", num_inference_steps=1)
        assert len((await acme.list_jobs())[0]) == 2


@contextlib.asynccontextmanager
async def gateways(url: str, auth_file: Path, tmp_path: Path, cache_dir: Path) -> AsyncIterator[list[str]]:
    settings = Settings.of(
        port=0,
        data_dir=tmp_path,
        cache_dir=cache_dir,
        redis_url=url,
        auth_file=auth_file,
        accept_without_workers=True,
        max_queue_depth=100,
    )
    async with GatewayServer(settings) as one, GatewayServer(settings) as other:
        yield [f"127.0.0.1:{one.port}", f"127.0.0.1:{other.port}"]


async def submit_all(addresses: list[str], key: str, count: int) -> tuple[int, int]:
    """``count`` submits at once, spread over the gateways; (accepted, refused with RESOURCE_EXHAUSTED)."""
    clients = [AsyncClient(address, api_key=key) for address in addresses]
    try:
        results = await asyncio.gather(
            *(clients[i % len(clients)].submit(f"job {i}", num_inference_steps=1) for i in range(count)),
            return_exceptions=True,
        )
    finally:
        for client in clients:
            await client.close()
    refused = [r for r in results if isinstance(r, ResourceExhausted)]
    accepted = [r for r in results if isinstance(r, pb.Job)]
    assert len(refused) + len(accepted) == count, results
    return len(accepted), len(refused)


async def test_quotas_hold_in_total_across_two_gateways(
    redis_url: str, tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    acme_key, globex_key = keys.create_key(auth_file, "acme"), keys.create_key(auth_file, "globex")
    keys.set_limits(auth_file, "acme", {"in_flight": 3})
    keys.set_limits(auth_file, "globex", {"rate": 1, "burst": 4})
    async with gateways(redis_url, auth_file, tmp_path, cache_dir) as addresses:
        assert await submit_all(addresses, acme_key, 10) == (3, 7)
        began = time.monotonic()
        accepted, _ = await submit_all(addresses, globex_key, 10)
        refilled = int(time.monotonic() - began)  # a token a second while they ran
        assert 4 <= accepted <= 4 + refilled
