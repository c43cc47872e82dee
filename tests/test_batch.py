"""Batched jobs (``--max-batch``) on real tiny Wan pipelines, through the real worker and both queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct
from helpers import CancelsAt
from redis_parts import redis_parts

from moviola.catalog import BUILTIN_MODELS
from moviola.jobs import Cancelled, Completed, JobRequest, Progress
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.scheduler.memory import MemoryJobQueue
from moviola.settings import QueueSettings, Settings
from moviola.storage.local import LocalStorage
from moviola.worker.hooks import JobHooks
from moviola.worker.runner import Worker

STEPS = 6


def _requests(model: str, count: int, **changes: Any) -> list[JobRequest]:
    spec = BUILTIN_MODELS[model]
    base = {"width": 64, "height": 64, "num_frames": 9, "num_inference_steps": STEPS} | changes
    return [request_for(spec, prompt=f"prompt {seed}", seed=seed, **base) for seed in range(1, count + 1)]


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal within one level of 255: batched float32 kernels sum in another order."""
    assert a.shape == b.shape
    assert int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 1


def _pipeline(cache_dir: Path, model: str) -> DiffusersVideo:
    pipeline = load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=cache_dir))
    assert isinstance(pipeline, DiffusersVideo)
    return pipeline


@pytest.mark.parametrize("model", ["tiny-wan2.1-t2v", "tiny-wan2.2-t2v", "tiny-wan2.2-ti2v"])
def test_each_member_of_a_batch_gets_the_video_it_would_get_alone(cache_dir: Path, model: str) -> None:
    pipeline = _pipeline(cache_dir, model)
    requests = _requests(model, 3)
    alone = [run_direct(pipeline, request).frames for request in requests]
    events: list[list[Any]] = [[], [], []]
    hooks = [JobHooks(e.append) for e in events]
    frames = pipeline.generate_batch(requests, list(hooks))
    for mine, single in zip(frames, alone, strict=True):
        assert mine is not None
        _close(mine, single)
    assert not np.array_equal(alone[0], alone[1])  # the seeds differ, and so do the videos
    for member in events:
        assert [e.step for e in member if isinstance(e, Progress)] == list(range(1, STEPS + 1))


@pytest.mark.parametrize("model", ["tiny-wan2.1-t2v", "tiny-wan2.2-t2v"])
def test_a_cancelled_member_leaves_at_its_next_step_and_the_others_are_undisturbed(
    cache_dir: Path, model: str
) -> None:
    pipeline = _pipeline(cache_dir, model)
    requests = _requests(model, 3)
    alone = [run_direct(pipeline, request).frames for request in requests]
    leaving = CancelsAt(2)
    stay = [JobHooks(lambda _e: None), JobHooks(lambda _e: None)]
    frames = pipeline.generate_batch(requests, [stay[0], leaving, stay[1]])
    assert frames[1] is None
    assert [e.step for e in leaving.events if isinstance(e, Progress)] == [1, 2]  # gone after step 2
    for index in (0, 2):
        mine = frames[index]
        assert mine is not None
        _close(mine, alone[index])


def test_a_batch_whose_members_all_leave_ends_without_decoding(cache_dir: Path) -> None:
    pipeline = _pipeline(cache_dir, "tiny-wan2.1-t2v")
    members = [CancelsAt(1), CancelsAt(3)]
    assert pipeline.generate_batch(_requests("tiny-wan2.1-t2v", 2), list(members)) == [None, None]
    assert [len([e for e in m.events if isinstance(e, Progress)]) for m in members] == [1, 3]


def test_jobs_with_an_image_or_of_another_family_never_batch(cache_dir: Path) -> None:
    wan = _pipeline(cache_dir, "tiny-wan2.1-t2v")
    request = _requests("tiny-wan2.1-t2v", 1)[0]
    assert wan.batchable(request)
    from dataclasses import replace

    assert not wan.batchable(replace(request, image=b"\x89PNG"))
    ltx = _pipeline(cache_dir, "tiny-ltx-video")
    assert not ltx.batchable(_requests("tiny-ltx-video", 1)[0])


class CountingPipeline(DiffusersVideo):
    """The real tiny pipeline, counting how it was called. The member of seed ``hold_seed`` waits at step
    ``HOLD_AT``, once its event is out, for the cancel the test sends on seeing it (steps of a tiny model
    are faster than a cancel's way through Redis, so without the wait it could finish first)."""

    calls: list[int]
    hold_seed: int = 0

    def generate_batch(self, requests: list[JobRequest], hooks: list[Any]) -> list[Any]:
        self.calls.append(len(requests))
        for request, member in zip(requests, hooks, strict=True):
            if request.seed == self.hold_seed:
                _hold(member._hooks)  # the member's JobHooks, under the batch's wrapper
        return super().generate_batch(requests, hooks)

    def generate(self, request: JobRequest, hooks: Any) -> Any:
        self.calls.append(1)
        return super().generate(request, hooks)


HOLD_AT = 4


def _hold(hooks: JobHooks) -> None:
    step = hooks.step

    def held(number: int, total_steps: int, *args: Any, **kwargs: Any) -> None:
        step(number, total_steps, *args, **kwargs)
        if number == HOLD_AT:
            assert hooks.wait_cancelled(30), "the cancel never arrived"
            hooks.check()  # raises JobCancelled: the member leaves at this step

    hooks.step = held  # type: ignore[method-assign,assignment]


def _counting(cache_dir: Path, model: str) -> CountingPipeline:
    pipeline = _pipeline(cache_dir, model)
    pipeline.__class__ = CountingPipeline
    assert isinstance(pipeline, CountingPipeline)
    pipeline.calls = []
    return pipeline


async def _queues(kind: str, redis_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """The queue a gateway uses and the one a worker uses: one memory queue, or a worker's Redis parts."""
    if kind == "memory":
        queue = MemoryJobQueue(QueueSettings(max_queue_depth=16))
        yield queue, queue
        return
    parts = redis_parts(redis_url, "batcher", max_queue_depth=16)
    try:
        yield parts.front, parts.claims
    finally:
        await parts.close()


async def _ends(queue: Any, job_id: str, cancel_at: int = 0) -> list[Any]:
    """The job's events to its terminal one; with ``cancel_at``, cancel it when that step is reported."""
    kinds = []
    async for event in queue.watch(job_id):
        kinds.append(event.kind)
        if cancel_at and isinstance(event.kind, Progress) and event.kind.step == cancel_at:
            await queue.cancel(job_id)
    return kinds


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_worker_batches_compatible_queued_jobs_and_each_ends_on_its_own(
    cache_dir: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    model = "tiny-wan2.1-t2v"
    pipeline = _counting(cache_dir, model)
    async for queue, claims in _queues(kind, redis_url):
        if isinstance(queue, MemoryJobQueue):
            queue.add_worker(model)
        batched = _requests(model, 3, num_inference_steps=12)
        pipeline.hold_seed = batched[1].seed  # the member cancelled at step HOLD_AT
        other = _requests(model, 1, width=96)[0]  # another size: never in their batch
        records = [(await queue.submit(r))[0] for r in [batched[0], other, *batched[1:]]]
        watched = [
            asyncio.create_task(_ends(queue, record.id, cancel_at=HOLD_AT if i == 2 else 0))
            for i, record in enumerate(records)
        ]
        worker = Worker(claims, pipeline, LocalStorage(tmp_path / kind), max_batch=4)
        running = asyncio.create_task(worker.run())
        ends = await asyncio.wait_for(asyncio.gather(*watched), 90)
        await worker.drain(5)
        await asyncio.wait_for(running, 10)
        assert pipeline.calls == [3, 1]  # the three of one size together, the other alone after them
        terminal = [kinds[-1] for kinds in ends]
        assert isinstance(terminal[0], Completed)
        assert isinstance(terminal[3], Completed)
        assert isinstance(terminal[1], Completed)
        assert terminal[1].width == 96
        assert isinstance(terminal[2], Cancelled)  # the member cancelled at step 4 left the batch
        steps = [[k.step for k in kinds if isinstance(k, Progress)] for kinds in ends]
        assert steps[0] == steps[3] == list(range(1, 13))
        assert 4 <= max(steps[2]) < 12
        for record, end in zip(records, terminal, strict=True):
            if isinstance(end, Completed):
                assert await asyncio.to_thread(Path(end.video_uri.removeprefix("file://")).exists)
                assert (await queue.get(record.id)).state.name == "COMPLETED"
