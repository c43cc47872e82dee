"""Edits: a video made again from a new prompt by the model's video-to-video pipeline (POST /v1/videos/edits,
gRPC EditJob), on a real server with the tiny Wan2.1 and LTX-Video models (which can edit) and tiny Wan2.2
(which cannot); and on a two-rank worker."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import av
import httpx
import numpy as np
import numpy.typing as npt
import openai
import pytest
from harness.pipeline import request_for, run_direct

from moviola.catalog import BUILTIN_MODELS, ModelDefaults
from moviola.client import Client, InvalidArgument
from moviola.errors import InvalidRequest
from moviola.jobs import EventKind, Progress
from moviola.mp4 import encode_mp4
from moviola.pipelines.base import EditingPipeline
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.parallel import ParallelPipeline
from moviola.pipelines.tiny import ensure_built
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings
from moviola.sizes import nearest
from moviola.testing import ServerProcess, free_port
from moviola.validation import RequestDraft, validate
from moviola.worker.hooks import JobHooks

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

WAN21 = BUILTIN_MODELS["tiny-wan2.1-t2v"]
LTX = BUILTIN_MODELS["tiny-ltx-video"]


def test_only_an_edit_takes_a_strength_and_only_within_its_bounds() -> None:
    models = {"tiny-wan2.1-t2v": WAN21, "tiny-wan2.2-t2v": BUILTIN_MODELS["tiny-wan2.2-t2v"], LTX.id: LTX}
    edit = RequestDraft(prompt="x", num_frames=17, edit_from="file:///v.mp4")
    assert validate(edit, models, "tiny-wan2.1-t2v").strength == ModelDefaults.edit_strength == 0.7
    # LTX's own default: its schedule stays noisy longer (docs/api.md, edits).
    assert validate(replace(edit, model=LTX.id), models, "tiny-wan2.1-t2v").strength == 0.35
    for draft, field in [
        (RequestDraft(prompt="x", strength=0.5), "strength"),  # not an edit
        (RequestDraft(prompt="x", num_frames=17, edit_from="file:///v.mp4", strength=1.5), "strength"),
        (
            RequestDraft(prompt="x", num_inference_steps=2, edit_from="file:///v.mp4", strength=0.4),
            "strength",
        ),
        (RequestDraft(model="tiny-wan2.2-t2v", prompt="x", edit_from="file:///v.mp4"), "model"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            validate(draft, models, "tiny-wan2.1-t2v")
        assert refused.value.field == field


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    folder = tmp_path_factory.mktemp("edits")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    models = [
        "--model",
        "tiny-wan2.1-t2v",
        "--also-serve",
        "tiny-wan2.2-t2v",
        "--also-serve",
        "tiny-ltx-video",
    ]
    with ServerProcess([*args, *models]) as running:
        yield running, f"http://127.0.0.1:{port}/v1"


def _decoded(data: bytes) -> npt.NDArray[np.uint8]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _clip(frames: int = 19) -> bytes:
    return encode_mp4(np.random.default_rng(3).integers(0, 255, (frames, 64, 96, 3), dtype=np.uint8), 16)


def test_a_catalogue_default_strength_outside_its_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="edit_strength"):
        ModelDefaults(
            width=64,
            height=64,
            num_frames=9,
            fps=8,
            num_inference_steps=2,
            guidance_scale=1.0,
            edit_strength=1.5,
        )


def test_an_edit_without_strength_takes_its_models_default(server: tuple[ServerProcess, str]) -> None:
    """Shown in ListModels and GET /v1/models, and taken by an edit that names none (here by id)."""
    listed = {entry["id"]: entry for entry in httpx.get(f"{server[1]}/models", timeout=30).json()["data"]}
    assert [listed[m]["default_edit_strength"] for m in (WAN21.id, LTX.id, "tiny-wan2.2-t2v")] == [
        0.7,
        0.35,
        None,
    ]
    with Client(server[0].address) as client:
        defaults = {m.id: m.defaults.edit_strength for m in client.list_models()}
        assert defaults[LTX.id] == pytest.approx(0.35)
        assert defaults[WAN21.id] == pytest.approx(0.7)
        assert defaults["tiny-wan2.2-t2v"] == 0.0  # it cannot edit
        for model, default in ((LTX.id, 0.35), (WAN21.id, 0.7)):
            made = list(client.generate("a fox", model=model, num_frames=9, width=64, height=64))
            answer = httpx.post(
                f"{server[1]}/videos/edits",
                json={"video": {"id": made[0].job_id}, "prompt": "a wolf"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["edit_strength"] == default
            events = list(client.watch(answer.json()["id"], timeout=300))
            assert events[-1].HasField("completed"), events[-1]
            steps = {e.progress.total_steps for e in events if e.HasField("progress")}
            assert steps == {int(8 * default)}  # the source's 8 steps, cut by the model's default


def test_the_sdks_edit_remakes_an_uploaded_video(server: tuple[ServerProcess, str]) -> None:
    client = openai.OpenAI(base_url=server[1], api_key="unused", max_retries=0)
    edited = client.videos.edit(
        video=("clip.mp4", _clip(), "video/mp4"), prompt="the same, in winter", extra_body={"strength": 0.5}
    )
    with Client(server[0].address) as grpc_client:
        events = list(grpc_client.watch(edited.id, timeout=300))
    assert events[-1].HasField("completed"), events[-1]
    steps = [(e.progress.step, e.progress.total_steps) for e in events if e.HasField("progress")]
    run = int(WAN21.defaults.num_inference_steps * 0.5)  # the pipeline runs the last half of the schedule
    assert steps == [(step, run) for step in range(1, run + 1)]
    done = client.videos.retrieve(edited.id)
    assert done.status == "completed"
    width, height = nearest(WAN21, 96, 64)
    assert str(done.size) == f"{width}x{height}"
    shown = done.model_dump()
    assert shown["num_frames"] == 17  # the upload's first 4k+1 frames
    assert shown["edit_strength"] == 0.5
    assert shown["edited_from_video_id"] is None
    frames = _decoded(client.videos.download_content(edited.id).read())
    assert frames.shape == (17, height, width, 3)
    client.close()


def test_edit_by_id_on_grpc_and_in_a_json_body(server: tuple[ServerProcess, str]) -> None:
    with Client(server[0].address) as client:
        made = list(client.generate("a fox", num_frames=9, num_inference_steps=2, width=64, height=64))
        source = made[0].job_id
        edited = client.edit(source, "a wolf", strength=1.0)
        assert edited.edited_from == source
        last = list(client.watch(edited.id, timeout=300))[-1]
        assert last.completed.num_frames == 9
        assert (last.completed.width, last.completed.height) == (64, 64)
        steps = [
            (e.progress.step, e.progress.total_steps)
            for e in client.watch(edited.id)
            if e.HasField("progress")
        ]
        assert steps == [(1, 2), (2, 2)]  # strength 1: every step
        with pytest.raises(InvalidArgument, match="strength"):
            client.edit(source, "x", strength=2.0)
        body = {"video": {"id": source}, "prompt": "a wolf at night", "strength": 0.5}
        answer = httpx.post(f"{server[1]}/videos/edits", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        shown = answer.json()
        assert (shown["edited_from_video_id"], shown["edit_strength"]) == (source, 0.5)
        assert list(client.watch(shown["id"], timeout=300))[-1].HasField("completed")
        form = httpx.post(f"{server[1]}/videos/edits", data={"video[id]": source, "prompt": "y"}, timeout=30)
        assert form.status_code == 200, form.text
        assert form.json()["edited_from_video_id"] == source
        t2v = list(client.generate("x", model="tiny-wan2.2-t2v", num_frames=5, num_inference_steps=1))
        with pytest.raises(InvalidArgument, match=r"model: tiny-wan2\.2-t2v cannot edit"):
            client.edit(t2v[0].job_id, "more")
    missing = httpx.post(f"{server[1]}/videos/edits", json=body | {"video": {"id": "nope"}}, timeout=30)
    assert missing.status_code == 404


def test_bad_edits_are_refused_naming_the_field(server: tuple[ServerProcess, str]) -> None:
    client = openai.OpenAI(base_url=server[1], api_key="unused", max_retries=0)
    clip = ("clip.mp4", _clip(), "video/mp4")
    with pytest.raises(openai.BadRequestError) as text_only:
        client.videos.edit(video=clip, prompt="x", extra_body={"model": "tiny-wan2.2-t2v"})
    assert text_only.value.body["param"] == "model"  # type: ignore[index]
    assert "tiny-wan2.1-t2v" in text_only.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as corrupt:
        client.videos.edit(video=("x.mp4", _clip()[:300], "video/mp4"), prompt="x")
    assert corrupt.value.body["param"] == "video"  # type: ignore[index]
    for strength in (0, 1.5, -1, "lots"):
        with pytest.raises(openai.BadRequestError) as out_of_range:
            client.videos.edit(video=clip, prompt="x", extra_body={"strength": strength})
        assert out_of_range.value.body["param"] == "strength"  # type: ignore[index]
    client.close()


def test_ltx_video_edits_an_upload_through_its_conditioning_pipeline(
    server: tuple[ServerProcess, str],
) -> None:
    client = openai.OpenAI(base_url=server[1], api_key="unused", max_retries=0)
    edited = client.videos.edit(
        video=("clip.mp4", _clip(23), "video/mp4"),
        prompt="the same, at dusk",
        extra_body={"model": "tiny-ltx-video", "strength": 0.5},
    )
    with Client(server[0].address) as grpc_client:
        events = list(grpc_client.watch(edited.id, timeout=300))
    assert events[-1].HasField("completed"), events[-1]
    steps = [(e.progress.step, e.progress.total_steps) for e in events if e.HasField("progress")]
    run = int(LTX.defaults.num_inference_steps * 0.5)  # denoise_strength cuts LTX's schedule as Wan's
    assert steps == [(step, run) for step in range(1, run + 1)]
    shown = client.videos.retrieve(edited.id).model_dump()
    assert (shown["model"], shown["num_frames"]) == ("tiny-ltx-video", 17)  # 23 uploaded: the first 8k+1
    width, height = nearest(LTX, 96, 64)
    frames = _decoded(client.videos.download_content(edited.id).read())
    assert frames.shape == (17, height, width, 3)
    client.close()


def _round_trip(cache_dir: Path, video: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """``video`` through the tiny LTX model's VAE: what an edit of no strength would give back. Its random
    weights keep little of any video, so this (not the video itself) is what a weak edit stays near."""
    import torch
    from diffusers import AutoencoderKLLTXVideo

    folder = ensure_built(cache_dir, "tiny-ltx-video") / "vae"
    vae = AutoencoderKLLTXVideo.from_pretrained(folder)  # type: ignore[no-untyped-call]
    pixels = torch.from_numpy(video).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
    with torch.inference_mode():
        decoded = vae.decode(vae.encode(pixels).latent_dist.mode(), return_dict=False)[0]
    return np.asarray(((decoded.clamp(-1, 1) + 1) * 127.5)[0].permute(1, 2, 3, 0), dtype=np.float64)


def test_ltx_video_strength_is_how_far_an_edit_strays(
    server: tuple[ServerProcess, str], cache_dir: Path
) -> None:
    steps = 20
    with Client(server[0].address) as client:
        made = list(
            client.generate(
                "a fox",
                model="tiny-ltx-video",
                num_frames=17,
                num_inference_steps=steps,
                width=96,
                height=64,
                seed=7,
            )
        )
        source = made[0].job_id
        edits = {strength: client.edit(source, "a wolf", strength=strength).id for strength in (0.05, 1.0)}
        results = {}
        for strength, job in edits.items():
            events = list(client.watch(job, timeout=300))
            assert events[-1].completed.num_frames == 17, events[-1]
            assert sum(e.HasField("progress") for e in events) == int(steps * strength)
            results[strength] = _decoded(b"".join(client.download(job))).astype(np.float64)
        near = _round_trip(cache_dir, _decoded(b"".join(client.download(source))))
    apart = np.abs(results[0.05] - results[1.0]).mean()
    weak, strong = (np.abs(results[s] - near).mean() for s in (0.05, 1.0))
    assert apart > 5, apart  # of 255 (about 20 measured): two strengths make two videos
    assert weak < strong - 1, (weak, strong)  # a weak edit stays nearer the source (about 27 and 32)


#: The scheduler LTX-Video 0.9.0 and 0.9.1 ship (diffusers' conversion script): dynamic shifting needs a ``mu``
#: that ``LTXConditionPipeline`` never passes.
LTX_090_SCHEDULER = {
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}


# LTXConditionPipeline hands the scheduler its timesteps as a tensor, which numpy turns into an array.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_ltx_video_edits_with_the_scheduler_of_its_first_releases(cache_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(ensure_built(cache_dir, "tiny-ltx-video"), tmp_path / "ltx-0.9.0")
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | LTX_090_SCHEDULER))
    model = DiffusersVideo.load(LTX, str(folder))
    video = np.random.default_rng(6).integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
    size = {"width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 4}
    events: list[EventKind] = []
    edited = model.edit(
        request_for(LTX, **size, strength=0.5, edit_from="file:///v.mp4"), JobHooks(events.append), video
    )
    assert edited.shape == video.shape
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2]
    generated = run_direct(model, request_for(LTX, **size))  # text-to-video keeps its own scheduler
    assert len(generated.progress) == 4


@pytest.mark.timeout(180)
def test_a_two_rank_worker_edits_as_one_rank_does(cache_dir: Path) -> None:
    two_ranks = load_pipeline(WAN21, Settings.of(cache_dir=cache_dir, gpus=2, parallel="cfg"))
    assert isinstance(two_ranks, ParallelPipeline)
    try:
        assert isinstance(two_ranks, EditingPipeline)  # what the worker checks before it edits
        one_rank = load_pipeline(WAN21, Settings.of(cache_dir=cache_dir))
        assert isinstance(one_rank, EditingPipeline)
        video = np.random.default_rng(5).integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
        size = {"width": 64, "height": 64, "num_frames": 9, "num_inference_steps": 4}
        request = request_for(WAN21, **size, strength=0.5, edit_from="file:///source.mp4")
        events: list[EventKind] = []
        frames = two_ranks.edit(request, JobHooks(events.append), video)
        np.testing.assert_array_equal(frames, one_rank.edit(request, JobHooks(lambda _: None), video))
        assert [e.step for e in events if isinstance(e, Progress)] == [1, 2]
        assert two_ranks.computed == 2  # a step each: rank 1 ran the other guidance pass
        after = request_for(WAN21, **size, seed=4)  # the ranks are still in step for the next job
        np.testing.assert_array_equal(run_direct(two_ranks, after).frames, run_direct(one_rank, after).frames)
    finally:
        two_ranks.close()
