"""Live previews: real tiny diffusers pipelines, the session's server, both backends' transport, the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODELS
from fakes import scripted_preview
from harness.pipeline import Run, request_for, run_direct
from helpers import moviola
from PIL import Image
from stacks import Stack, events_of

from moviola.catalog import BUILTIN_MODELS as CATALOG
from moviola.client import Client
from moviola.client.errors import InvalidArgument
from moviola.jobs import JobRequest, Preview
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.preview import (
    PREVIEW_LONG_SIDE,
    Previewer,
    _denormalization,
    _spatial_ratio,
    preview_size,
)
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb
from moviola.worker.hooks import JobHooks


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (832, 480, (256, 148)),
        (480, 832, (148, 256)),
        (1280, 720, (256, 144)),
        (128, 64, (128, 64)),
        (64, 64, (64, 64)),
    ],
)
def test_preview_size_keeps_the_aspect_and_caps_the_long_side(
    width: int, height: int, expected: tuple[int, int]
) -> None:
    assert preview_size(width, height) == expected
    assert max(preview_size(width, height)) <= PREVIEW_LONG_SIDE


def _decoded(preview: pb.Preview) -> Image.Image:
    with Image.open(io.BytesIO(preview.image)) as image:
        image.load()
        return image


#: Models that take a prompt alone (the image-to-video one is covered with an image below).
TEXT_MODELS = [m for m in TINY_MODELS if m != "tiny-wan2.2-i2v"]


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_every_nth_step_and_the_last_carry_a_decodable_preview_of_the_documented_size(
    client: Client, model: str
) -> None:
    events = list(client.generate("a fox", model=model, num_inference_steps=5, preview_every=2, seed=1))
    progress = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
    assert [p.step for p in progress if p.HasField("preview")] == [2, 4, 5]
    done = events[-1].completed
    for p in progress:
        if p.HasField("preview"):
            image = _decoded(p.preview)
            assert image.format == "JPEG"
            assert p.preview.mime_type == "image/jpeg"
            assert image.size == (p.preview.width, p.preview.height) == preview_size(done.width, done.height)
    job = client.get(events[-1].job_id)
    assert not job.progress.HasField("preview")  # the record keeps no image


def test_image_to_video_jobs_preview_too(client: Client) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 32), (200, 30, 30)).save(buffer, format="PNG")
    events = list(
        client.generate(
            "a fox", model="tiny-wan2.2-i2v", image=buffer.getvalue(), num_inference_steps=2, preview_every=1
        )
    )
    previews = [e.progress.preview for e in events if e.progress.HasField("preview")]
    assert len(previews) == 2
    assert all(_decoded(p).size == (p.width, p.height) for p in previews)


def test_preview_every_above_the_steps_is_refused_by_name(client: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.submit("a fox", num_inference_steps=3, preview_every=4)
    assert caught.value.field == "preview_every"


def _request(preview_every: int, **changes: object) -> JobRequest:
    return request_for(
        CATALOG["tiny-wan2.2-t2v"],
        num_frames=5,
        num_inference_steps=3,
        seed=3,
        preview_every=preview_every,
        **changes,
    )


def _previews(run: Run) -> list[Preview]:
    return [p.preview for p in run.progress if p.preview is not None]


@pytest.fixture(scope="module")
def wan(cache_dir: Path) -> DiffusersVideo:
    pipeline = load_pipeline(CATALOG["tiny-wan2.2-t2v"], Settings.of(cache_dir=cache_dir))
    assert isinstance(pipeline, DiffusersVideo)
    return pipeline


def test_previews_off_cost_nothing_and_previews_on_change_no_frame(wan: DiffusersVideo) -> None:
    off = run_direct(wan, _request(0))
    assert not wan._previewer.fitted  # no fit, no render: the only work is one comparison per step
    assert not _previews(off)
    on = run_direct(wan, _request(1))
    assert wan._previewer.fitted
    assert len(_previews(on)) == 3
    np.testing.assert_array_equal(off.frames, on.frames)


def test_the_fitted_projection_explains_held_out_colours_better_than_their_mean(wan: DiffusersVideo) -> None:
    pipe = wan._pipe
    weights, bias = Previewer(pipe, seed=5).projection()
    side = 2 * _spatial_ratio(pipe)
    colours = torch.rand(48, 3, generator=torch.Generator().manual_seed(99)) * 2 - 1
    with torch.inference_mode():
        frames = colours.view(-1, 3, 1, 1, 1).expand(-1, 3, 1, side, side)
        z = pipe.vae.encode(frames).latent_dist.mode().float().mean(dim=(2, 3, 4))
    scale, shift = _denormalization(pipe, z.shape[1])
    predicted = ((z - shift) / scale) @ weights + bias
    residual = float(((predicted - colours) ** 2).sum())
    around_mean = float(((colours - colours.mean(0)) ** 2).sum())
    assert residual < 0.9 * around_mean


def test_ltx_previews_unpack_its_packed_latents(cache_dir: Path) -> None:
    pipeline = load_pipeline(CATALOG["tiny-ltx-video"], Settings.of(cache_dir=cache_dir))
    assert isinstance(pipeline, DiffusersVideo)
    d = CATALOG["tiny-ltx-video"].defaults
    previews = _previews(run_direct(pipeline, _request(1, model="tiny-ltx-video", width=d.width, height=64)))
    assert len(previews) == 3
    assert all(isinstance(p, Preview) and (p.width, p.height) == preview_size(d.width, 64) for p in previews)


async def test_previews_reach_watchers_intact_on_both_backends(stack: Stack) -> None:
    job = await stack.client.submit("a fox", num_inference_steps=4, preview_every=2, width=96, height=64)
    events = await events_of(stack.client, job.id)
    got = {e.progress.step: e.progress.preview for e in events if e.progress.HasField("preview")}
    assert sorted(got) == [2, 4]
    request = _request(2, width=96, height=64)
    for step, preview in got.items():
        sent = scripted_preview(request, step)
        assert (preview.image, preview.width, preview.height) == (sent.image, sent.width, sent.height)


def test_cli_saves_previews_in_the_folder_it_is_given(server: ServerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "previews"
    args = ["--server", server.address, "--frames", "5", "--steps", "4", "--previews", str(folder)]
    done = moviola("generate", "a fox", *args, "--preview-every", "3")
    assert done.returncode == 0, done.stderr
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["step-0003.jpg", "step-0004.jpg"]
    with Image.open(folder / saved[0]) as image:
        assert image.format == "JPEG"


def test_hooks_ask_for_previews_only_on_the_chosen_steps() -> None:
    hooks = JobHooks(lambda _: None, preview_every=3)
    assert [s for s in range(1, 8) if hooks.wants_preview(s, 7)] == [3, 6, 7]
    assert not any(JobHooks(lambda _: None).wants_preview(s, 7) for s in range(1, 8))
