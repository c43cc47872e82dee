"""Every catalogue architecture through the server: real diffusers pipelines with tiny random weights."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_MODELS
from helpers import decode, kinds, path_of
from PIL import Image

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client, InvalidArgument
from moviola.segments import can_segment
from moviola.v1 import job_pb2 as pb


def image(size: tuple[int, int] = (96, 64), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, format=fmt)
    return out.getvalue()


# (model, with an image, width, height, frames, mixture of experts)
CASES = [
    ("tiny-wan2.2-t2v", False, 96, 64, 9, True),
    ("tiny-wan2.2-i2v", True, 96, 64, 9, True),
    ("tiny-wan2.2-ti2v", False, 96, 64, 9, False),
    ("tiny-wan2.2-ti2v", True, 96, 64, 9, False),
    ("tiny-wan2.1-t2v", False, 96, 64, 9, False),
    ("tiny-ltx-video", False, 96, 64, 9, False),
    ("tiny-ltx-video", True, 96, 64, 17, False),
    ("tiny-skyreels-v2-df", False, 96, 64, 9, False),
    ("tiny-hunyuanvideo", False, 96, 64, 9, False),
]
IDS = [f"{m}-{'i2v' if img else 't2v'}" for m, img, *_ in CASES]


@pytest.mark.parametrize(("model", "with_image", "width", "height", "frames", "moe"), CASES, ids=IDS)
def test_generates_through_the_server(
    client: Client, model: str, with_image: bool, width: int, height: int, frames: int, moe: bool
) -> None:
    extra: dict[str, Any] = {"image": image()} if with_image else {}
    events = list(
        client.generate(
            "a red fox",
            model=model,
            width=width,
            height=height,
            num_frames=frames,
            num_inference_steps=6,
            seed=3,
            **extra,
        )
    )
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[-1] == "completed", events[-1]
    assert all(e.model == model for e in events)
    steps = [e.progress for e in events if e.HasField("progress")]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    experts = [s.expert for s in steps]
    if moe:
        switch = experts.index(pb.EXPERT_LOW_NOISE)
        assert experts == [pb.EXPERT_HIGH_NOISE] * switch + [pb.EXPERT_LOW_NOISE] * (6 - switch)
    else:
        assert set(experts) == {pb.EXPERT_SINGLE}
    done = events[-1].completed
    assert done.model == model
    assert done.peak_memory_bytes > 0
    assert done.timings.text_encoding.ToNanoseconds() > 0
    assert done.timings.vae_decoding.ToNanoseconds() > 0
    video, codec, pix_fmt = decode(path_of(done.video_uri))
    assert video.shape == (frames, height, width, 3)
    assert (codec, pix_fmt) == ("h264", "yuv420p")


@pytest.mark.parametrize("model", TINY_MODELS[1:])
def test_same_seed_same_video_and_cancellation(client: Client, model: str, data_dir: Path) -> None:
    extra: dict[str, Any] = {"image": image()} if model == "tiny-wan2.2-i2v" else {}

    def frames(seed: int) -> np.ndarray:
        events = list(
            client.generate("a cat", model=model, num_frames=9, num_inference_steps=2, seed=seed, **extra)
        )
        return decode(path_of(events[-1].completed.video_uri))[0]

    assert np.array_equal(frames(5), frames(5))
    assert not np.array_equal(frames(5), frames(6))

    before = set((data_dir / "videos").glob("*"))
    events = []
    for event in client.generate("stop me", model=model, num_frames=9, num_inference_steps=50, **extra):
        events.append(event)
        if event.HasField("progress") and event.progress.step == 1:
            client.cancel(event.job_id)
    assert kinds(events)[-1] == "cancelled"
    assert len([e for e in events if e.HasField("progress")]) < 50
    assert set((data_dir / "videos").glob("*")) == before


def _invalid(model: str) -> list[tuple[str, dict[str, object], str]]:
    spec = BUILTIN_MODELS[model]
    lim = spec.limits
    # One window, or past it a long video up to max_seconds where the model continues from frames.
    fps, k = spec.defaults.fps, lim.frame_multiple
    served = {m: BUILTIN_MODELS[m] for m in TINY_MODELS}  # the session server serves every tiny twin
    longest = math.floor(lim.max_seconds * fps / k) * k + 1 if can_segment(spec, served) else lim.max_frames
    cases: list[tuple[str, dict[str, object], str]] = [
        ("width", {"width": lim.size_multiple + 8}, f"multiple of {lim.size_multiple}"),
        ("height", {"height": lim.max_size + lim.size_multiple}, f"{lim.min_size}..{lim.max_size}"),
        ("num_frames", {"num_frames": lim.frame_multiple + 2}, f"must be {lim.frame_multiple}k+1"),
        ("num_frames", {"num_frames": longest + lim.frame_multiple}, f"at most {longest}"),
        ("num_inference_steps", {"num_inference_steps": lim.max_steps + 1}, f"1..{lim.max_steps}"),
        ("guidance_scale", {"guidance_scale": 25.0}, "0..20"),
        ("resolution", {"resolution": "4k"}, "no preset '4k'"),
    ]
    if spec.image_input.value == "required":
        cases.append(("image", {}, "needs an input image"))
    if spec.image_input.value == "unsupported":
        cases.append(("image", {"image": image()}, "text-to-video only"))
    else:
        cases.append(("image", {"image": b"\x89PNG but not really"}, "not a decodable"))
        cases.append(("image", {"image": image(fmt="GIF")}, "must be PNG, JPEG or WebP"))
    if not spec.mixture_of_experts:
        cases.append(("guidance_scale_2", {"guidance_scale_2": 2.0}, "only mixture-of-experts"))
    return cases


MATRIX = [(model, *case) for model in BUILTIN_MODELS if model.startswith("tiny-") for case in _invalid(model)]


@pytest.mark.parametrize(
    ("model", "field", "fields", "message"),
    MATRIX,
    ids=[f"{m}-{f}-{i}" for i, (m, f, _, _) in enumerate(MATRIX)],
)
def test_validation_matrix(
    client: Client, model: str, field: str, fields: dict[str, object], message: str
) -> None:
    options: dict[str, object] = {"model": model}
    if BUILTIN_MODELS[model].image_input.value == "required" and field != "image":
        options["image"] = image()
    options.update(fields)
    with pytest.raises(InvalidArgument) as info:
        client.submit("a fox", **options)  # type: ignore[arg-type]
    assert info.value.field == field
    assert message in info.value.message


def test_frame_counts_are_rejected_with_the_nearest_valid_ones(client: Client) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.submit("x", model="tiny-ltx-video", num_frames=20)
    assert "nearest valid: 17 or 25" in info.value.message
    with pytest.raises(InvalidArgument) as info:
        client.submit("x", model="tiny-wan2.2-ti2v", num_frames=20)
    assert "nearest valid: 17 or 21" in info.value.message


def test_presets_and_family_names(client: Client) -> None:
    job = client.submit("x", model="tiny-wan2.2-t2v", resolution="tiny", num_inference_steps=1, num_frames=1)
    assert (job.request.width, job.request.height) == (128, 128)
    listed = {m.id: m for m in client.list_models()}
    assert {p.name for p in listed["tiny-wan2.2-t2v"].presets} == {"tiny", "480p"}
    assert listed["tiny-wan2.2-t2v"].fallback == "tiny-ltx-video"
    assert listed["tiny-wan2.2-i2v"].image_input == 2  # IMAGE_INPUT_REQUIRED
    assert listed["tiny-ltx-video"].limits.frame_multiple == 8
    assert listed["tiny-wan2.2-ti2v"].limits.size_multiple == 32
    for job_model in ("tiny-wan2.2-t2v",):
        assert client.get(job.id).model == job_model
