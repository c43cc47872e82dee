"""Admission on both backends: start estimates that learn, max_wait honoured while queued, no silent waits."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import kinds
from stacks import Stack, block_first_job, built_stack, events_of

from moviola.client import Client, ResourceExhausted, Unavailable
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

CLI = [sys.executable, "-m", "moviola.client.cli"]


async def run_to_end(stack: Stack, prompt: str, steps: int) -> list[pb.JobEvent]:
    job = await stack.client.submit(prompt, num_inference_steps=steps)
    return await events_of(stack.client, job.id)


async def test_an_idle_server_admits_at_once_after_a_slow_cold_run(stack: Stack) -> None:
    # The first run is cold and slow (1.2 s); the next ones take a few milliseconds.
    stack.pipeline.step_seconds = 0.3
    assert kinds(await run_to_end(stack, "cold", 4))[-1] == "completed"
    stack.pipeline.step_seconds = 0.0
    for i in range(2):
        assert kinds(await run_to_end(stack, f"warm {i}", 4))[-1] == "completed"
    # Nothing runs or waits: the estimate is 0, whatever the cold run took.
    job = await stack.client.submit("x", num_inference_steps=4, max_wait=0.5)
    assert kinds(await events_of(stack.client, job.id))[-1] == "completed"


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_refusal_names_max_wait_as_given_and_retries_after_the_estimate(
    request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path, backend: str
) -> None:
    async with built_stack(backend, request, tmp_path, cache_dir, max_queue_depth=10) as stack:
        stack.pipeline.step_seconds = 0.1
        for i in range(3):  # a steady 0.5 s per 5-step job
            await run_to_end(stack, f"learn {i}", 5)
        await block_first_job(stack)  # 2 steps: a smaller class, about 0.2 s
        for i in range(4):
            await stack.client.submit(f"waiting {i}", num_inference_steps=5)
        try:
            with pytest.raises(ResourceExhausted) as info:
                await stack.client.submit("in a hurry", num_inference_steps=5, max_wait=0.25)
        finally:
            stack.pipeline.gate.set()
    message = info.value.message
    assert "after its deadline or max_wait (0.25s)" in message
    # Its fallback (tiny-ltx-video) is not served here: no hint to allow it.
    assert "allow_fallback" not in message
    # Four 0.5 s jobs wait ahead of it: the retry delay says so (it used to be 1 s whatever the wait).
    assert info.value.retry_after is not None
    assert info.value.retry_after > 1.5


async def test_a_queued_job_fails_once_its_max_wait_passes(stack: Stack) -> None:
    blocker = await block_first_job(stack)
    try:
        # Nothing has finished yet, so no estimate: the job is accepted, and must start within 0.5 s.
        late = await stack.client.submit("behind the blocker", num_inference_steps=1, max_wait=0.5)
        assert late.state == pb.JOB_STATE_QUEUED
        events = await asyncio.wait_for(events_of(stack.client, late.id), 10)
    finally:
        stack.pipeline.gate.set()
    assert "started" not in kinds(events)
    assert kinds(events)[-1] == "failed"
    failed = events[-1].failed
    assert failed.code == pb.FAILURE_CODE_DEADLINE_EXCEEDED
    assert "max_wait" in failed.message
    assert failed.retryable
    record = await stack.client.get(late.id)
    assert record.state == pb.JOB_STATE_FAILED
    assert kinds(await events_of(stack.client, blocker.id))[-1] == "completed"
    # The worker is not left holding the expired job: the next one runs.
    assert kinds(await run_to_end(stack, "after", 1))[-1] == "completed"


def test_a_gateway_with_no_worker_says_so(redis_url: str) -> None:
    with ServerProcess(["--redis-url", redis_url]) as gateway, Client(gateway.address) as client:
        with pytest.raises(Unavailable) as info:
            client.submit("x", model="tiny-wan2.2-t2v", max_wait=3)
        assert "no worker serves model tiny-wan2.2-t2v" in info.value.message
        assert info.value.retry_after is not None


def test_the_cli_does_not_hang_on_a_model_no_worker_serves(redis_url: str) -> None:
    # Scale-to-zero: the gateway queues jobs no worker serves yet; max_wait still ends them.
    with ServerProcess(["--redis-url", redis_url, "--accept-without-workers"]) as gateway:
        started = time.monotonic()
        done = subprocess.run(
            [
                *CLI,
                "generate",
                "x",
                "--model",
                "tiny-wan2.2-t2v",
                "--max-wait",
                "3",
                "--server",
                gateway.address,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert "DEADLINE_EXCEEDED" in done.stdout + done.stderr
    assert time.monotonic() - started < 30


def test_a_second_server_on_a_port_in_use_exits_at_once() -> None:
    with ServerProcess() as first:
        port = first.address.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "moviola.runtime", "serve", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert second.returncode != 0
    assert f"port {port} is in use" in second.stderr
    assert "Traceback" not in second.stderr
