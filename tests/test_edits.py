"""Edits: a video made again from a new prompt by the model's video-to-video pipeline (POST /v1/videos/edits,
gRPC EditJob), on a real server with the tiny Wan2.1 model (which can edit) and tiny Wan2.2 (which cannot)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import numpy.typing as npt
import openai
import pytest

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client, InvalidArgument
from moviola.editing import DEFAULT_STRENGTH
from moviola.errors import InvalidRequest
from moviola.mp4 import encode_mp4
from moviola.sizes import nearest
from moviola.testing import ServerProcess, free_port
from moviola.validation import RequestDraft, validate

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

WAN21 = BUILTIN_MODELS["tiny-wan2.1-t2v"]


def test_only_an_edit_takes_a_strength_and_only_within_its_bounds() -> None:
    models = {"tiny-wan2.1-t2v": WAN21, "tiny-wan2.2-t2v": BUILTIN_MODELS["tiny-wan2.2-t2v"]}
    edit = RequestDraft(prompt="x", num_frames=17, edit_from="file:///v.mp4")
    assert validate(edit, models, "tiny-wan2.1-t2v").strength == DEFAULT_STRENGTH
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
    with ServerProcess([*args, "--model", "tiny-wan2.1-t2v", "--also-serve", "tiny-wan2.2-t2v"]) as running:
        yield running, f"http://127.0.0.1:{port}/v1"


def _decoded(data: bytes) -> npt.NDArray[np.uint8]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _clip() -> bytes:
    return encode_mp4(np.random.default_rng(3).integers(0, 255, (19, 64, 96, 3), dtype=np.uint8), 16)


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
