"""Speed profiles on real tiny diffusers pipelines: exact is exact, fast skips work and says so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client
from moviola.errors import FailedPrecondition, InvalidRequest
from moviola.jobs import JobRequest, Progress
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings
from moviola.v1 import job_pb2 as pb
from moviola.validation import RequestDraft, validate
from moviola.worker.hooks import JobHooks


def _request(model: str, profile: str, steps: int = 12) -> JobRequest:
    spec = BUILTIN_MODELS[model]
    return request_for(
        spec, width=64, height=64, num_frames=9, num_inference_steps=steps, seed=4, speed_profile=profile
    )


def _run(pipeline: DiffusersVideo, request: JobRequest) -> tuple[np.ndarray, list[Progress], JobHooks]:
    run = run_direct(pipeline, request)
    return run.frames, run.progress, run.hooks


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("model", ["tiny-wan2.1-t2v", "tiny-wan2.2-t2v"])
def test_fast_caches_steps_and_exact_stays_exact(cache_dir: Path, model: str) -> None:
    pipeline = load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=cache_dir))
    assert isinstance(pipeline, DiffusersVideo)
    exact, exact_steps, exact_hooks = _run(pipeline, _request(model, "exact"))
    assert not any(p.cached for p in exact_steps)
    assert exact_hooks.cached_steps == 0
    fast, fast_steps, fast_hooks = _run(pipeline, _request(model, "fast"))
    assert [p.step for p in fast_steps] == list(range(1, 13))  # every step is still reported
    cached = [p.step for p in fast_steps if p.cached]
    assert cached, "the step cache served no step"
    assert fast_hooks.cached_steps == len(cached) < 12
    psnr = _psnr(exact, fast)
    print(f"{model}: fast cached {len(cached)}/12 steps, PSNR {psnr:.1f} dB against exact")
    assert 20 < psnr < float("inf")  # different, and close
    again, _, _ = _run(pipeline, _request(model, "exact"))
    np.testing.assert_array_equal(exact, again)  # the cache is off again: bit-identical


@pytest.mark.parametrize("model", ["tiny-ltx-video", "tiny-hunyuanvideo", "tiny-wan2.2-ti2v"])
def test_every_family_runs_fast(cache_dir: Path, model: str) -> None:
    pipeline = load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=cache_dir))
    assert isinstance(pipeline, DiffusersVideo)
    request = replace(_request(model, "fast", steps=6), width=64, height=64)
    frames, steps, _ = _run(pipeline, request)
    assert len(steps) == 6
    assert frames.shape[1:] == (64, 64, 3)


def test_the_profile_is_reported_in_events_and_result(client: Client) -> None:
    events = list(
        client.generate("a fox", num_inference_steps=10, num_frames=5, speed_profile="fast", seed=2)
    )
    done = events[-1].completed
    flags = [e.progress.cached for e in events if e.WhichOneof("kind") == "progress"]
    assert len(flags) == 10
    assert done.speed_profile == pb.SPEED_PROFILE_FAST
    assert done.cached_steps == sum(flags)
    plain = list(client.generate("a fox", num_inference_steps=2, num_frames=5))[-1].completed
    assert plain.speed_profile == pb.SPEED_PROFILE_EXACT  # the worker's default
    assert plain.cached_steps == 0


def test_an_unknown_profile_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate(RequestDraft(prompt="a fox", speed_profile="warp"), BUILTIN_MODELS, "tiny-wan2.2-t2v")
    assert refused.value.field == "speed_profile"
    with pytest.raises(InvalidRequest, match="no fast profile"):
        validate(
            RequestDraft(prompt="x", model="tiny-skyreels-v2-df", speed_profile="fast"), BUILTIN_MODELS, ""
        )


def test_the_attention_backend_is_checked_at_load_and_changes_nothing_it_should_not(cache_dir: Path) -> None:
    spec = BUILTIN_MODELS["tiny-wan2.1-t2v"]
    default = load_pipeline(spec, Settings.of(cache_dir=cache_dir))
    math = load_pipeline(spec, Settings.of(cache_dir=cache_dir, attention_backend="_native_math"))
    assert isinstance(default, DiffusersVideo)
    assert isinstance(math, DiffusersVideo)
    request = _request("tiny-wan2.1-t2v", "exact", steps=3)
    plain, _, _ = _run(default, request)
    other, _, _ = _run(math, request)
    assert np.abs(plain.astype(int) - other.astype(int)).max() <= 2  # another kernel, the same video
    for name, says in (
        ("flash", "flash-attn"),
        ("no-such-kernel", "must be one of"),
        ("flash_hub", "downloaded"),
    ):
        with pytest.raises(FailedPrecondition, match=says):
            load_pipeline(spec, Settings.of(cache_dir=cache_dir, attention_backend=name))
    load_pipeline(spec, Settings.of(cache_dir=cache_dir, attention_backend="native"))  # back to the default
