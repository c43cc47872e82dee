"""Memory plans: which plan each card gets, what the catalogue's peaks must at least hold (counted from the
published configurations), and that every plan leaves a real tiny pipeline's output unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct

from moviola.catalog import BUILTIN_MODELS, CARD_HEADROOM, MemoryOptions, MemoryPlan, load_catalog
from moviola.errors import FailedPrecondition
from moviola.pipelines import memory, published
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings

# What torch reports as total memory (GiB) on the deployment's cards.
A10G, A100_40, L40S, H100 = 22.2, 39.4, 44.4, 79.1


def _peak(model: str, plan: str) -> float:
    return next(p.peak_gib for p in BUILTIN_MODELS[model].memory.candidates() if p.name == plan)


@pytest.mark.parametrize(
    ("model", "card", "plan"),
    [
        ("wan2.2-t2v-a14b", H100, "resident"),
        ("wan2.2-t2v-a14b", L40S, "resident"),  # with fp8 experts: both stay on a 48 GB card
        ("wan2.2-t2v-a14b", A100_40, "encoder_offload"),  # fp8 experts resident, no expert swap
        ("wan2.2-t2v-a14b", A10G, "group_offload"),
        ("wan2.2-i2v-a14b", A100_40, "encoder_offload"),
        ("wan2.2-ti2v-5b", A100_40, "resident"),
        ("wan2.2-ti2v-5b", A10G, "model_offload"),
        ("wan2.1-t2v-1.3b", A10G, "resident"),
        ("wan2.1-t2v-1.3b", 7.6, "group_offload"),  # an 8 GB card
        ("ltx-video", A10G, "resident"),
        ("hunyuanvideo", A100_40, "model_offload"),
    ],
)
def test_each_card_gets_the_fastest_plan_that_fits(model: str, card: float, plan: str) -> None:
    assert BUILTIN_MODELS[model].memory.choose(card).name == plan


def test_fp8_plans_are_chosen_by_card_and_a_fixed_quantization_keeps_to_its_plans() -> None:
    a14b = BUILTIN_MODELS["wan2.2-t2v-a14b"].memory
    assert a14b.choose(H100).quantize == "none"  # an 80 GB card keeps bf16
    assert a14b.choose(L40S) == MemoryPlan("resident", 42, "fp8")
    assert a14b.choose(A100_40) == MemoryPlan("encoder_offload", 33, "fp8")
    assert a14b.choose(A100_40, quantize="none") == MemoryPlan(
        "expert_swap", 34
    )  # --quantize none: bf16 swaps
    assert a14b.choose(H100, quantize="int8") == MemoryPlan(
        "resident", quantize="int8"
    )  # no peak listed for it


def test_a_card_no_plan_fits_is_refused_with_what_it_would_need(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ValueError, match=r"smallest, group_offload \(quantize none\), is expected to reach 12 GiB"
    ):
        BUILTIN_MODELS["wan2.2-t2v-a14b"].memory.choose(8.0)
    monkeypatch.setattr(memory, "card_gib", lambda device: 8.0)  # an 8 GB card, as the worker would see it
    with pytest.raises(FailedPrecondition, match=r"wan2\.2-t2v-a14b: no memory plan fits this card"):
        DiffusersVideo.load(BUILTIN_MODELS["wan2.2-t2v-a14b"], "never-read", device="cpu")


def test_a_plan_named_by_the_operator_wins_and_the_cpu_keeps_everything_resident() -> None:
    options = BUILTIN_MODELS["wan2.2-t2v-a14b"].memory
    assert options.choose(H100, "group_offload") == MemoryPlan("group_offload", 12)
    assert options.choose(None).name == "resident"
    assert MemoryOptions(model_cpu_offload=True).choose(A10G).name == "model_offload"  # older catalogues


def test_an_unknown_plan_in_a_catalogue_names_the_model(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        '[[model]]\nid = "m"\ndescription = ""\npipeline = "WanPipeline"\nsource = "x"\n'
        "defaults = { width = 64, height = 64, num_frames = 9, fps = 8, num_inference_steps = 2, guidance_scale = 1.0 }\n"
        'memory = { plans = [{ name = "everything_on_the_gpu", peak_gib = 1 }] }\n'
    )
    with pytest.raises(ValueError, match=r"model 'm': memory plan 'everything_on_the_gpu' is not one of"):
        load_catalog(path)


def test_the_catalogue_peaks_hold_the_weights_each_plan_keeps_on_the_card() -> None:
    """Weights counted from the published configurations (bf16), not estimated; activations come on top."""
    expert = published.gib(published.wan_transformer("wan2.2-a14b-expert"))
    five = published.gib(published.wan_transformer("wan2.2-ti2v-5b"))
    small = published.gib(published.wan_transformer("wan2.1-t2v-1.3b"))
    umt5 = published.gib(published.umt5_xxl())
    assert round(expert, 1) == 26.6
    assert round(umt5, 1) == 10.6
    for model in ("wan2.2-t2v-a14b", "wan2.2-i2v-a14b"):
        assert _peak(model, "resident") > 2 * expert + umt5  # both experts and the text encoder
        assert _peak(model, "expert_swap") > expert  # one expert at a time ...
        assert _peak(model, "expert_swap") <= A100_40 * CARD_HEADROOM  # ... which is what fits p4d's A100
        fp8 = [p.peak_gib for p in BUILTIN_MODELS[model].memory.candidates() if p.quantize == "fp8"]
        assert fp8[0] > expert + umt5 and fp8[0] <= L40S * CARD_HEADROOM  # noqa: PT018  two fp8 experts, bf16 UMT5
        assert fp8[1] > expert and fp8[1] <= A100_40 * CARD_HEADROOM  # noqa: PT018  two fp8 experts alone
        assert _peak(model, "group_offload") <= A10G * CARD_HEADROOM  # and g5's A10G streams blocks
    assert _peak("wan2.2-ti2v-5b", "resident") > five + umt5
    assert _peak("wan2.2-ti2v-5b", "model_offload") > max(five, umt5)
    assert _peak("wan2.1-t2v-1.3b", "resident") > small + umt5
    assert _peak("wan2.1-t2v-1.3b", "model_offload") > umt5


def test_720p_jobs_decode_tiled_and_480p_jobs_do_not() -> None:
    a14b = BUILTIN_MODELS["wan2.2-t2v-a14b"].memory
    assert a14b.tiles(1280, 720)
    assert not a14b.tiles(832, 480)
    assert BUILTIN_MODELS["wan2.2-ti2v-5b"].memory.tiles(1280, 704)


@pytest.mark.parametrize("model", ["tiny-wan2.2-t2v", "tiny-ltx-video"])
def test_every_plan_leaves_the_output_unchanged(cache_dir: Path, model: str) -> None:
    spec = BUILTIN_MODELS[model]
    request = request_for(spec, width=64, height=64, num_frames=9, num_inference_steps=4, seed=2)
    resident = run_direct(load_pipeline(spec, Settings.of(cache_dir=cache_dir)), request).frames
    for plan in ("encoder_offload", "model_offload", "expert_swap", "group_offload"):
        pipeline = load_pipeline(spec, Settings.of(cache_dir=cache_dir, memory_plan=plan))
        assert isinstance(pipeline, DiffusersVideo)
        assert pipeline.memory_plan.name == plan
        np.testing.assert_array_equal(run_direct(pipeline, request).frames, resident)


def test_expert_swap_gives_the_card_to_one_big_component_at_a_time(cache_dir: Path) -> None:
    spec = BUILTIN_MODELS["tiny-wan2.2-t2v"]
    pipeline = load_pipeline(spec, Settings.of(cache_dir=cache_dir, memory_plan="expert_swap"))
    assert isinstance(pipeline, DiffusersVideo)
    turns = pipeline.turns
    assert turns is not None
    request = request_for(spec, width=64, height=64, num_frames=9, num_inference_steps=6)
    run_direct(pipeline, request)
    run_direct(pipeline, request)
    # Per job: the text encoder, the high-noise expert, then at the boundary the low-noise one.
    once = ["UMT5EncoderModel", "WanTransformer3DModel", "WanTransformer3DModel"]
    assert turns.turns == once + once
    assert turns.on_device is pipeline._pipe.transformer_2  # the last expert stays for the next job


def test_encoder_offload_keeps_the_experts_and_lends_the_card_to_the_text_encoder(cache_dir: Path) -> None:
    spec = BUILTIN_MODELS["tiny-wan2.2-t2v"]
    settings = Settings.of(cache_dir=cache_dir, memory_plan="encoder_offload", quantize="fp8")
    pipeline = load_pipeline(spec, settings)
    assert isinstance(pipeline, DiffusersVideo)
    assert (pipeline.memory_plan.name, pipeline.quantization) == ("encoder_offload", "fp8")
    turns = pipeline.turns
    assert turns is not None
    request = request_for(spec, width=64, height=64, num_frames=9, num_inference_steps=4)
    run_direct(pipeline, request)
    run_direct(pipeline, request)
    assert turns.turns == ["UMT5EncoderModel", "UMT5EncoderModel"]  # once a job; the experts never move
    assert turns.on_device is None  # the first transformer call took the card back


def test_group_offload_streams_the_blocks(cache_dir: Path) -> None:
    from diffusers.hooks.group_offloading import _get_group_onload_device

    spec = BUILTIN_MODELS["tiny-wan2.1-t2v"]
    pipeline = load_pipeline(spec, Settings.of(cache_dir=cache_dir, memory_plan="group_offload"))
    assert isinstance(pipeline, DiffusersVideo)
    pipe = pipeline._pipe
    for component in (pipe.transformer, pipe.text_encoder):
        assert str(_get_group_onload_device(component)) == "cpu"  # hooks that move groups on and off


def test_a_plan_the_operator_names_must_exist() -> None:
    with pytest.raises(ValueError, match="memory_plan must be auto or one of"):
        Settings.of(memory_plan="everything")


def test_a_tiling_threshold_turns_tiling_on_per_job(cache_dir: Path) -> None:
    spec = BUILTIN_MODELS["tiny-wan2.1-t2v"]
    spec = replace(spec, memory=replace(spec.memory, vae_tiling_pixels=64 * 64))
    pipeline = DiffusersVideo.load(spec, str(cache_dir / "tiny-wan2.1-t2v"), device="cpu")
    small = request_for(spec, width=32, height=32, num_frames=5, num_inference_steps=2)
    run_direct(pipeline, small)
    assert not pipeline._pipe.vae.use_tiling
    run_direct(pipeline, replace(small, width=64, height=64))
    assert pipeline._pipe.vae.use_tiling
