"""Multi-GPU workers on the CPU: two real ranks (gloo) splitting the guidance passes of a tiny Wan model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import start_server
from harness.pipeline import request_for, run_direct
from helpers import CancelsAt

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client
from moviola.errors import FailedPrecondition, InvalidInput, JobCancelled
from moviola.jobs import JobRequest, Progress
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.parallel import ParallelPipeline
from moviola.settings import Settings

MODEL = "tiny-wan2.2-t2v"
STEPS = 6


def _request(**changes: Any) -> JobRequest:
    base = {"width": 64, "height": 64, "num_frames": 9, "num_inference_steps": STEPS, "seed": 8} | changes
    return request_for(BUILTIN_MODELS[MODEL], **base)


@pytest.fixture(scope="module")
def two_ranks(cache_dir: Path) -> Iterator[ParallelPipeline]:
    pipeline = load_pipeline(BUILTIN_MODELS[MODEL], Settings.of(cache_dir=cache_dir, gpus=2, parallel="cfg"))
    assert isinstance(pipeline, ParallelPipeline)
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="module")
def one_rank(cache_dir: Path) -> Any:
    return load_pipeline(BUILTIN_MODELS[MODEL], Settings.of(cache_dir=cache_dir))


@pytest.mark.timeout(120)
def test_two_ranks_split_the_guidance_passes_and_give_the_same_video(
    two_ranks: ParallelPipeline, one_rank: Any
) -> None:
    request = _request()
    run = run_direct(two_ranks, request)
    np.testing.assert_array_equal(run.frames, run_direct(one_rank, request).frames)
    assert two_ranks.computed == STEPS  # rank 0 ran one pass a step; rank 1 ran the other
    assert [p.step for p in run.progress] == list(range(1, STEPS + 1))


@pytest.mark.timeout(120)
def test_a_job_without_guidance_runs_replicated(two_ranks: ParallelPipeline, one_rank: Any) -> None:
    request = _request(guidance_scale=1.0, guidance_scale_2=1.0, seed=9)
    np.testing.assert_array_equal(run_direct(two_ranks, request).frames, run_direct(one_rank, request).frames)
    assert two_ranks.computed == STEPS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("phase_cancel", [False, True])
def test_a_cancel_stops_every_rank_at_one_step_and_the_next_job_is_right(
    two_ranks: ParallelPipeline, one_rank: Any, phase_cancel: bool
) -> None:
    hooks = CancelsAt(0 if phase_cancel else 2)
    if phase_cancel:
        hooks.request_cancel("cancelled before it started denoising")
    with pytest.raises(JobCancelled):
        two_ranks.generate(_request(), hooks)
    steps = [e.step for e in hooks.events if isinstance(e, Progress)]
    assert steps == ([] if phase_cancel else [1, 2])
    request = _request(seed=10)  # the ranks are still in step: the next job is exact
    np.testing.assert_array_equal(run_direct(two_ranks, request).frames, run_direct(one_rank, request).frames)


@pytest.mark.parametrize(
    ("model", "gpus", "parallel", "message"),
    [
        (MODEL, 3, "cfg", "needs --gpus 2"),
        ("tiny-ltx-video", 2, "cfg", "runs Wan pipelines"),
        (MODEL, 2, "ulysses", "context parallelism, which needs 2 GPUs"),
        (MODEL, 4, "auto", "context parallelism, which needs 4 GPUs"),
    ],
)
def test_a_split_that_cannot_run_here_is_refused_at_start(
    cache_dir: Path, model: str, gpus: int, parallel: str, message: str
) -> None:
    with pytest.raises(FailedPrecondition, match=message):
        load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=cache_dir, gpus=gpus, parallel=parallel))


@pytest.mark.timeout(180)
def test_a_server_started_with_two_ranks_serves_jobs(cache_dir: Path, tmp_path: Path) -> None:
    server = start_server(cache_dir, tmp_path, "--gpus", "2").start()
    try:
        with Client(server.address) as client:
            events = list(
                client.generate("two ranks", num_frames=9, num_inference_steps=4, width=64, height=64)
            )
        done = events[-1]
        assert done.WhichOneof("kind") == "completed"
        assert [e.progress.step for e in events if e.WhichOneof("kind") == "progress"] == [1, 2, 3, 4]
    finally:
        server.stop()
    assert any("on 2 ranks (--parallel cfg)" in line for line in server.log_lines)


def test_settings_refuse_an_unknown_split() -> None:
    with pytest.raises(ValueError, match="parallel must be auto, cfg, ulysses or ring"):
        Settings.of(parallel="tensor")
    assert replace(Settings.of(gpus=2).models, parallel="auto").gpus == 2


def test_an_edit_on_a_model_that_cannot_edit_is_refused_before_the_ranks_hear_of_it(
    two_ranks: ParallelPipeline, one_rank: Any
) -> None:
    video = np.zeros((9, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(InvalidInput, match=f"model {MODEL} cannot edit videos"):
        two_ranks.edit(_request(strength=0.5, edit_from="file:///source.mp4"), CancelsAt(), video)
    request = _request(seed=11)  # nothing was sent: the next job is exact
    np.testing.assert_array_equal(run_direct(two_ranks, request).frames, run_direct(one_rank, request).frames)
