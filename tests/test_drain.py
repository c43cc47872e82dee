"""SIGTERM drains: no new work, the running job finishes within the grace period, then the process exits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import kinds

from moviola.client import Client, Unavailable
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb


def wait_not_serving(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs lack Watch
        for status in health.Watch(health_pb2.HealthCheckRequest(), timeout=30):
            if status.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                return


def test_sigterm_lets_the_running_job_finish_and_refuses_new_work(cache_dir: Path, tmp_path: Path) -> None:
    server = start_server(cache_dir, tmp_path).start()
    try:
        with Client(server.address) as client:
            events = []
            for event in client.generate("drain me", num_frames=9, num_inference_steps=30):
                events.append(event)
                if event.WhichOneof("kind") == "progress" and event.progress.step == 1:
                    server.terminate()
                    wait_not_serving(server)
                    with pytest.raises(Unavailable) as info:
                        client.submit("too late")
                    assert "shutting down" in info.value.message
            assert kinds(events)[-1] == "completed"
            assert [e.progress.step for e in events if e.WhichOneof("kind") == "progress"] == list(
                range(1, 31)
            )
        assert server.wait(60) == 0
        assert any("draining" in line for line in server.log_lines)
    finally:
        server.stop()


def test_grace_period_over_ends_running_and_queued_jobs_as_retryable_failures(
    cache_dir: Path, tmp_path: Path
) -> None:
    server = start_server(cache_dir, tmp_path, "--drain-grace", "0.5").start()
    try:
        with Client(server.address) as client, ThreadPoolExecutor(1) as pool:
            running = client.submit("long", num_frames=17, width=256, height=256, num_inference_steps=50)
            queued = client.submit("waiting", num_inference_steps=1)
            queued_events = pool.submit(lambda: list(client.watch(queued.id)))
            events = []
            for event in client.watch(running.id):
                events.append(event)
                if event.WhichOneof("kind") == "progress" and event.progress.step == 1:
                    server.terminate()
            for job_events in (events, queued_events.result(60)):
                assert kinds(job_events)[-1] == "failed"
                assert job_events[-1].failed.code == pb.FAILURE_CODE_UNAVAILABLE
                assert job_events[-1].failed.retryable
            assert "started" not in kinds(queued_events.result())
            assert len([e for e in events if e.WhichOneof("kind") == "progress"]) < 50
        assert server.wait(60) == 0
        assert not list((tmp_path / "videos").glob("*"))
    finally:
        server.stop()
