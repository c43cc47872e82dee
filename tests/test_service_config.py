"""The Python client's service config: requests with an idempotency key are retried on RESOURCE_EXHAUSTED
after the server's pushback; requests without one are not."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from fakes import ScriptedPipeline

from moviola.client import Client, ResourceExhausted
from moviola.errors import ResourceExhausted as DomainResourceExhausted
from moviola.jobs import JobRecord, JobRequest
from moviola.quota import NO_LIMITS, Limits
from moviola.runtime.embedded import EmbeddedServer
from moviola.settings import Settings


async def test_keyed_submit_is_retried_after_the_pushback_and_unkeyed_is_not(tmp_path: Path) -> None:
    pipeline = ScriptedPipeline(block_at=1)
    settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=tmp_path, max_queue_depth=1)
    async with EmbeddedServer(settings, loader=lambda s, _: pipeline) as server:
        attempts: list[str] = []
        refused = threading.Event()
        submit = server.queue.submit

        async def counting_submit(request: JobRequest, limits: Limits = NO_LIMITS) -> tuple[JobRecord, bool]:
            try:
                result = await submit(request, limits)
            except DomainResourceExhausted:
                attempts.append(f"{request.prompt}: refused")
                if request.prompt == "keyed":
                    refused.set()
                raise
            attempts.append(f"{request.prompt}: accepted")
            return result

        server.queue.submit = counting_submit  # type: ignore[method-assign]
        address = f"127.0.0.1:{server.port}"

        def run() -> tuple[str, str]:
            with Client(address) as client:
                client.submit("running", num_inference_steps=2)
                assert pipeline.reached.wait(30)
                waiting = client.submit("waiting", num_inference_steps=1)
                with pytest.raises(ResourceExhausted):
                    client.submit("unkeyed", num_inference_steps=1)
                keyed: list[str] = []
                thread = threading.Thread(
                    target=lambda: keyed.append(
                        client.submit("keyed", num_inference_steps=1, idempotency_key="k1").id
                    )
                )
                thread.start()
                assert refused.wait(30)
                client.cancel(waiting.id)  # frees the queue while the keyed submit waits out its pushback
                thread.join(60)
                pipeline.gate.set()
                return keyed[0], client.get(keyed[0]).request.prompt

        _, prompt = await asyncio.to_thread(run)
    assert prompt == "keyed"
    assert attempts.count("unkeyed: refused") == 1  # not retried
    assert attempts.count("keyed: refused") >= 1
    assert attempts[-1] == "keyed: accepted"
