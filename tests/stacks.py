"""One contract, two backends: a ``stack`` fixture that is the embedded server or a Redis gateway and worker.

Both run in-process around a ``ScriptedPipeline``; the Redis one on a real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fakes import ScriptedPipeline

from moviola.client import AsyncClient
from moviola.runtime.embedded import EmbeddedServer
from moviola.runtime.gateway import GatewayServer
from moviola.runtime.worker import WorkerProcess
from moviola.settings import Settings
from moviola.v1 import job_pb2 as pb

#: Jobs waiting per model before submits are refused, in every stack.
DEPTH = 3


@dataclass
class Stack:
    client: AsyncClient
    pipeline: ScriptedPipeline
    address: str


@pytest_asyncio.fixture(params=["memory", "redis"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path) -> AsyncIterator[Stack]:
    async with built_stack(request.param, request, tmp_path, cache_dir) as built:
        yield built


@contextlib.asynccontextmanager
async def built_stack(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path, **options: Any
) -> AsyncIterator[Stack]:
    """The embedded server (``memory``) or a gateway and a worker on the test's Redis (``redis``)."""
    pipeline = ScriptedPipeline(block_at=None)
    options = {"max_queue_depth": DEPTH, **options}
    if backend == "memory":
        settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=cache_dir, **options)
        embedded = EmbeddedServer(settings, loader=lambda s, _: pipeline)
        async with embedded as server, AsyncClient(f"127.0.0.1:{server.port}") as client:
            yield Stack(client, pipeline, f"127.0.0.1:{server.port}")
        return
    url = request.getfixturevalue("redis_url")
    settings = Settings.of(
        port=0, data_dir=tmp_path, cache_dir=cache_dir, redis_url=url, **{"lease": 5, **options}
    )
    worker = WorkerProcess(settings, loader=lambda s, _: pipeline)
    await worker.start()
    try:
        async with GatewayServer(settings) as gateway, AsyncClient(f"127.0.0.1:{gateway.port}") as client:
            yield Stack(client, pipeline, f"127.0.0.1:{gateway.port}")
    finally:
        pipeline.gate.set()
        await worker.drain(5)


async def events_of(client: AsyncClient, job_id: str, after: int = 0) -> list[pb.JobEvent]:
    return [e async for e in client.watch(job_id, after)]


async def block_first_job(stack: Stack, client: AsyncClient | None = None) -> pb.Job:
    """Submit a job (through ``client``, else the stack's) that holds the worker at step 1 until the test lets it go."""
    stack.pipeline.block_at = 1
    stack.pipeline.gate.clear()
    stack.pipeline.reached.clear()
    job = await (client or stack.client).submit("blocker", num_inference_steps=2)
    await asyncio.to_thread(stack.pipeline.reached.wait, 30)
    return job
