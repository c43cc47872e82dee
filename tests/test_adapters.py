"""LoRA adapters and the turbo profile on real tiny diffusers pipelines, loaded through diffusers and peft."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct

from moviola.catalog import BUILTIN_MODELS
from moviola.errors import FailedPrecondition, InvalidInput
from moviola.jobs import JobRequest, LoraChoice
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.tiny_lora import build_tiny_lora
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings

MODEL = "tiny-wan2.2-t2v"
SPEC = BUILTIN_MODELS[MODEL]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loras")
    build_tiny_lora(folder / "style", MODEL, seed=1)
    build_tiny_lora(folder / "other", MODEL, seed=2)
    build_tiny_lora(folder / "style-comfy", MODEL, seed=1, layout="original")  # style, in ComfyUI's layout
    return folder


def _load(cache_dir: Path, lora_dir: Path | None = None, **options: object) -> DiffusersVideo:
    dirs = (str(lora_dir),) if lora_dir is not None else ()
    pipeline = load_pipeline(SPEC, Settings.of(cache_dir=cache_dir, lora_dir=dirs, **options))
    assert isinstance(pipeline, DiffusersVideo)
    return pipeline


@pytest.fixture(scope="module")
def pipeline(cache_dir: Path, lora_dir: Path) -> DiffusersVideo:
    return _load(cache_dir, lora_dir)


def _request(*loras: LoraChoice, **changes: object) -> JobRequest:
    base = {"width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 6, "seed": 4}
    return request_for(SPEC, loras=loras, **(base | changes))


def test_adapters_change_the_video_and_leave_no_trace(pipeline: DiffusersVideo, cache_dir: Path) -> None:
    fresh = run_direct(_load(cache_dir), _request()).frames  # a worker that never saw an adapter
    style = run_direct(pipeline, _request(LoraChoice("style"))).frames
    other = run_direct(pipeline, _request(LoraChoice("other", 0.7))).frames
    both = run_direct(pipeline, _request(LoraChoice("style"), LoraChoice("other", 0.7))).frames
    silent = run_direct(pipeline, _request(LoraChoice("style", 0.0))).frames
    after = run_direct(pipeline, _request()).frames
    assert not np.array_equal(style, fresh)
    assert not np.array_equal(style, other)
    assert not np.array_equal(both, style) and not np.array_equal(both, other)  # noqa: PT018
    np.testing.assert_array_equal(silent, fresh)  # scale 0 is no adapter
    np.testing.assert_array_equal(after, fresh)  # no leak of the last job's adapters or scales


def test_the_original_wan_layout_loads_as_the_diffusers_one(pipeline: DiffusersVideo) -> None:
    diffusers_layout = run_direct(pipeline, _request(LoraChoice("style"))).frames
    comfy_layout = run_direct(pipeline, _request(LoraChoice("style-comfy"))).frames
    np.testing.assert_array_equal(comfy_layout, diffusers_layout)


def test_turbo_runs_its_steps_with_one_pass_each(pipeline: DiffusersVideo) -> None:
    exact = run_direct(pipeline, _request(num_inference_steps=4))
    assert [p.transformer_passes for p in exact.progress] == [2, 2, 2, 2]  # guidance: two passes a step
    turbo_request = _request(
        speed_profile="turbo", num_inference_steps=4, guidance_scale=1.0, guidance_scale_2=1.0
    )
    turbo = run_direct(pipeline, turbo_request)
    assert [p.step for p in turbo.progress] == [1, 2, 3, 4]
    assert [p.transformer_passes for p in turbo.progress] == [1, 1, 1, 1]
    assert turbo.hooks.transformer_passes == 4
    experts = [p.expert.value for p in turbo.progress]
    assert experts == ["high_noise", "high_noise", "low_noise", "low_noise"]  # Lightning's split at 875
    assert pipeline.adapters_of(turbo_request) == (LoraChoice("tiny-wan2.2-t2v-turbo"),)
    with_style = run_direct(pipeline, replace(turbo_request, loras=(LoraChoice("style"),)))
    assert not np.array_equal(with_style.frames, turbo.frames)  # turbo combines with a caller's adapter
    np.testing.assert_array_equal(run_direct(pipeline, _request(num_inference_steps=4)).frames, exact.frames)


def test_a_full_cache_swaps_the_least_recently_used_adapter_out_in_place(
    pipeline: DiffusersVideo, cache_dir: Path, lora_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="moviola.pipelines.lora")
    small = _load(cache_dir, lora_dir, lora_cache=1)
    assert small.adapter_bank is not None
    first = run_direct(small, _request(LoraChoice("style"))).frames
    other = run_direct(small, _request(LoraChoice("other"))).frames  # hot-swapped into style's layers
    assert small.adapter_bank.loaded == ["other"]
    assert "adapter other hot-swapped in place of style" in caplog.text  # not unloaded and loaded anew
    np.testing.assert_array_equal(other, run_direct(pipeline, _request(LoraChoice("other"))).frames)
    np.testing.assert_array_equal(run_direct(small, _request(LoraChoice("style"))).frames, first)
    np.testing.assert_array_equal(
        run_direct(small, _request()).frames, run_direct(pipeline, _request()).frames
    )


def test_fused_adapters_match_unfused_ones(pipeline: DiffusersVideo, cache_dir: Path, lora_dir: Path) -> None:
    fused = _load(cache_dir, lora_dir, fuse_lora=True)
    for request in (_request(LoraChoice("style")), _request(), _request(LoraChoice("other", 0.5))):
        a, b = run_direct(fused, request).frames, run_direct(pipeline, request).frames
        assert int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= 2  # fusing rounds, a little


def test_a_corrupt_or_foreign_adapter_stops_the_start_naming_its_file(
    tmp_path: Path, cache_dir: Path
) -> None:
    from safetensors.torch import save_file
    from torch import zeros

    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FailedPrecondition, match=r"adapter broken: .*broken\.safetensors"):
        _load(cache_dir, tmp_path)
    (tmp_path / "broken.safetensors").unlink()
    foreign = {
        "transformer.blocks.0.attn1.to_q.lora_A.weight": zeros(4, 99),
        "transformer.blocks.0.attn1.to_q.lora_B.weight": zeros(24, 4),
    }
    save_file(foreign, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(FailedPrecondition, match=r"foreign\.safetensors.*does not fit.*in_features 24"):
        _load(cache_dir, tmp_path)


def test_an_adapter_that_fails_at_first_use_fails_its_job_and_is_marked_bad(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    pipeline = _load(cache_dir, None, lora=("missing=moviola-tests/no-such-adapter",))
    for _ in range(2):  # the second job fails at once, with the same reason
        with pytest.raises(InvalidInput, match="adapter missing cannot be loaded"):
            run_direct(pipeline, _request(LoraChoice("missing")))
    assert run_direct(pipeline, _request()).frames.shape == (9, 64, 64, 3)  # the worker stays healthy


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize(("quantize", "floor"), [("int8", 40.0), ("fp8", 30.0)])
def test_quantized_weights_stay_close_to_full_precision(
    pipeline: DiffusersVideo, cache_dir: Path, lora_dir: Path, quantize: str, floor: float
) -> None:
    quantized = _load(cache_dir, lora_dir, quantize=quantize)
    assert quantized.quantization == quantize
    for request in (_request(), _request(LoraChoice("style"))):  # adapters run on quantized weights too
        psnr = _psnr(run_direct(quantized, request).frames, run_direct(pipeline, request).frames)
        print(f"{quantize}: PSNR {psnr:.1f} dB against float32")
        assert floor < psnr


def test_impossible_quantization_is_refused_before_loading(cache_dir: Path) -> None:
    with pytest.raises(FailedPrecondition, match=r"fp8-dynamic .* compute capability 8\.9"):
        _load(cache_dir, quantize="fp8-dynamic")
    with pytest.raises(FailedPrecondition, match="--fuse-lora cannot fuse adapters into quantized weights"):
        _load(cache_dir, quantize="int8", fuse_lora=True)


def test_the_step_cache_keeps_working_with_an_adapter(pipeline: DiffusersVideo) -> None:
    fast = run_direct(pipeline, _request(LoraChoice("style"), speed_profile="fast", num_inference_steps=12))
    plain = run_direct(pipeline, _request(speed_profile="fast", num_inference_steps=12))
    assert fast.hooks.cached_steps > 0  # the cache served steps with the adapter on
    assert not np.array_equal(fast.frames, plain.frames)  # and the adapter still shows


@pytest.mark.timeout(120)
async def test_a_batching_worker_never_mixes_adapter_sets(
    cache_dir: Path, lora_dir: Path, tmp_path: Path
) -> None:
    from moviola.jobs import Completed
    from moviola.scheduler.memory import MemoryJobQueue
    from moviola.settings import QueueSettings
    from moviola.storage.local import LocalStorage
    from moviola.worker.runner import Worker

    pipeline = _load(cache_dir, lora_dir)
    calls: list[list[tuple[LoraChoice, ...]]] = []
    batch = pipeline.generate_batch

    def counted(requests: list[JobRequest], hooks: list[Any]) -> list[Any]:
        calls.append([r.loras for r in requests])
        return batch(requests, hooks)

    pipeline.generate_batch = counted  # type: ignore[method-assign]
    queue = MemoryJobQueue(QueueSettings(max_queue_depth=16))
    queue.add_worker(MODEL)
    sets = [
        (LoraChoice("style"),),
        (LoraChoice("other"),),
        (LoraChoice("style"),),
        (LoraChoice("style", 0.5),),
    ]
    records = [(await queue.submit(_request(*loras, seed=i)))[0] for i, loras in enumerate(sets)]
    worker = Worker(queue, pipeline, LocalStorage(tmp_path), max_batch=4)
    running = asyncio.create_task(worker.run())
    ends = [await asyncio.wait_for(_terminal(queue, record.id), 90) for record in records]
    await worker.drain(5)
    await asyncio.wait_for(running, 10)
    assert calls == [[(LoraChoice("style"),), (LoraChoice("style"),)]]  # only the same set and scale batch
    for end, loras in zip(ends, sets, strict=True):
        assert isinstance(end, Completed)
        assert end.loras == loras


async def _terminal(queue: Any, job_id: str) -> Any:
    last = None
    async for event in queue.watch(job_id):
        last = event.kind
    return last


@pytest.mark.parametrize("plan", ["expert_swap", "encoder_offload"])
def test_adapters_under_memory_plans_that_move_weights_give_the_resident_videos(
    pipeline: DiffusersVideo, cache_dir: Path, lora_dir: Path, plan: str
) -> None:
    moving = _load(cache_dir, lora_dir, memory_plan=plan, lora_cache=1)
    for request in (
        _request(LoraChoice("style")),
        _request(LoraChoice("other")),
        _request(LoraChoice("style")),
    ):
        np.testing.assert_array_equal(
            run_direct(moving, request).frames, run_direct(pipeline, request).frames
        )
