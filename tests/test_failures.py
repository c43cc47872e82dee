"""Failures inside jobs end those jobs, never the server (in-process servers, one fixture per failure)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from fakes import ScriptedPipeline
from helpers import kinds

from moviola.catalog import ModelSpec
from moviola.client import AsyncClient, Unavailable
from moviola.errors import PipelineFailed
from moviola.jobs import Expert, JobRequest, Preview
from moviola.pipelines.base import Frames, StepHooks, VideoPipeline
from moviola.pipelines.loader import load_pipeline
from moviola.runtime.embedded import EmbeddedServer
from moviola.settings import Settings
from moviola.v1 import job_pb2 as pb


def settings(tmp_path: Path, cache_dir: Path) -> Settings:
    return Settings.of(port=0, data_dir=tmp_path, cache_dir=cache_dir, drain_grace=5)


async def serve(
    tmp_path: Path, cache_dir: Path, pipeline: VideoPipeline
) -> AsyncIterator[tuple[EmbeddedServer, AsyncClient]]:
    server = EmbeddedServer(settings(tmp_path, cache_dir), loader=lambda spec, s: pipeline)
    async with server, AsyncClient(f"127.0.0.1:{server.port}") as client:
        yield server, client


async def test_pipeline_error_fails_the_job_and_the_server_keeps_serving(
    tmp_path: Path, cache_dir: Path
) -> None:
    pipeline = ScriptedPipeline(fail_at=3, error=PipelineFailed("boom at step 3"))
    async for _server, client in serve(tmp_path, cache_dir, pipeline):
        events = [e async for e in client.generate("x", num_inference_steps=5)]
        assert kinds(events)[-1] == "failed"
        assert events[-1].failed.code == pb.FAILURE_CODE_INTERNAL
        assert "boom at step 3" in events[-1].failed.message
        assert [e.progress.step for e in events if e.WhichOneof("kind") == "progress"] == [1, 2]

        pipeline.fail_at = None
        again = [e async for e in client.generate("x", num_inference_steps=5)]
        assert kinds(again)[-1] == "completed"
        assert list(tmp_path.glob("videos/*.mp4")) == [
            Path(again[-1].completed.video_uri.removeprefix("file://"))
        ]


async def test_unexpected_exception_is_reported_not_raised(tmp_path: Path, cache_dir: Path) -> None:
    pipeline = ScriptedPipeline(fail_at=1, error=KeyError("surprise"))
    async for _, client in serve(tmp_path, cache_dir, pipeline):
        events = [e async for e in client.generate("x", num_inference_steps=2)]
        assert events[-1].failed.code == pb.FAILURE_CODE_INTERNAL
        assert "KeyError" in events[-1].failed.message
        pipeline.fail_at = None
        assert [e async for e in client.generate("x", num_inference_steps=2)][-1].WhichOneof(
            "kind"
        ) == "completed"


class OutOfMemoryAtStep:
    """The real tiny Wan pipeline, whose step hook hits a CUDA-style out-of-memory error."""

    def __init__(self, inner: VideoPipeline, step: int) -> None:
        self.inner, self.step_no = inner, step

    @property
    def spec(self) -> ModelSpec:
        return self.inner.spec

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        outer = self

        class Hooks:
            def phase(self, phase: object) -> None:
                hooks.phase(phase)  # type: ignore[arg-type]

            def wants_preview(self, step: int, total: int) -> bool:
                return hooks.wants_preview(step, total)

            def step(
                self,
                step: int,
                total: int,
                timestep: float,
                expert: Expert,
                preview: Preview | None = None,
                cached: bool = False,
                transformer_passes: int = 0,
            ) -> None:
                if step == outer.step_no:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
                hooks.step(step, total, timestep, expert, preview, cached)

            def peak_memory(self, peak_bytes: int) -> None:
                hooks.peak_memory(peak_bytes)

        return self.inner.generate(request, Hooks())


async def test_out_of_memory_fails_the_job_with_its_own_code(tmp_path: Path, cache_dir: Path) -> None:
    base = settings(tmp_path, cache_dir)
    server = EmbeddedServer(base, loader=lambda spec, s: OutOfMemoryAtStep(load_pipeline(spec, s), 2))
    async with server, AsyncClient(f"127.0.0.1:{server.port}") as client:
        events = [e async for e in client.generate("x", num_frames=5, num_inference_steps=4)]
        failed = events[-1].failed
        assert failed.code == pb.FAILURE_CODE_OUT_OF_MEMORY
        assert failed.retryable
        assert "smaller size or fewer frames" in failed.message
        assert not list(tmp_path.glob("videos/*.mp4"))


async def test_while_loading_health_is_not_serving_and_submits_are_unavailable(
    tmp_path: Path, cache_dir: Path
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    release = threading.Event()
    pipeline = ScriptedPipeline()

    def slow_loader(spec: ModelSpec, s: Settings) -> VideoPipeline:
        release.wait(60)
        return pipeline

    server = EmbeddedServer(settings(tmp_path, cache_dir), loader=slow_loader)
    import asyncio

    starting = asyncio.create_task(server.start())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs lack Watch
        statuses = health.Watch(health_pb2.HealthCheckRequest(service="moviola.v1.GenerationService"))
        first = await statuses.read()
        assert first.status == health_pb2.HealthCheckResponse.NOT_SERVING
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(Unavailable) as info:
                await client.submit("x")
            assert "loading" in info.value.message
            assert info.value.retry_after is not None
            release.set()
            second = await statuses.read()
            assert second.status == health_pb2.HealthCheckResponse.SERVING
            job = await client.submit("x", num_inference_steps=1)
            assert job.state == pb.JOB_STATE_QUEUED
        statuses.cancel()
    await starting
    await server.stop()
