"""Long videos: past one model window, made as segments on a model that continues from frames."""

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
from processes import gateway, worker

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client, InvalidArgument
from moviola.errors import InvalidRequest
from moviola.mp4 import encode_mp4
from moviola.segments import overlap, plan
from moviola.testing import ServerProcess, free_port
from moviola.v1 import job_pb2 as pb
from moviola.validation import RequestDraft, validate

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

TI2V = BUILTIN_MODELS["tiny-wan2.2-ti2v"]


@pytest.mark.parametrize("total", [49, 53, 97, 101, 193])
def test_segments_cover_the_video_each_a_window_at_most(total: int) -> None:
    sizes = plan(total, TI2V)
    k, window = TI2V.limits.frame_multiple, TI2V.limits.max_frames
    assert all((size - 1) % k == 0 and size <= window for size in sizes)
    made = sizes[0] + sum(size - overlap(TI2V) for size in sizes[1:])
    assert total <= made < total + k
    assert len(sizes) == 1 or sizes[-1] > overlap(TI2V)  # every segment adds frames


def test_only_models_that_continue_from_frames_make_long_videos() -> None:
    long = RequestDraft(prompt="x", seconds="4")  # 4 s at 24 fps: 97 frames, two windows of 49
    assert validate(long, BUILTIN_MODELS, "tiny-wan2.2-ti2v").num_frames == 97
    with pytest.raises(InvalidRequest) as refused:
        validate(long, {"tiny-wan2.1-t2v": BUILTIN_MODELS["tiny-wan2.1-t2v"]}, "tiny-wan2.1-t2v")
    assert refused.value.field == "seconds"
    assert "one window" in refused.value.reason
    with pytest.raises(InvalidRequest, match="at most 20"):
        validate(RequestDraft(prompt="x", seconds="21"), BUILTIN_MODELS, "tiny-wan2.2-ti2v")


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    folder = tmp_path_factory.mktemp("long")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    with ServerProcess([*args, "--model", "tiny-wan2.2-ti2v", "--also-serve", "tiny-wan2.2-t2v"]) as running:
        yield running, f"http://127.0.0.1:{port}/v1"


def _frames(client: Client, job_id: str) -> npt.NDArray[np.uint8]:
    with av.open(io.BytesIO(b"".join(client.download(job_id))), mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_long_video_runs_segment_by_segment_into_one_mp4(server: tuple[ServerProcess, str]) -> None:
    with Client(server[0].address) as client:
        request = pb.GenerateRequest(prompt="a fox", seconds=4, num_inference_steps=2, width=64, height=64)
        events = list(client.generate(request))
        steps = [
            (e.progress.segment, e.progress.total_segments, e.progress.step)
            for e in events
            if e.HasField("progress")
        ]
        total = len(plan(97, TI2V))
        assert steps == [(s, total, step) for s in range(1, total + 1) for step in (1, 2)]
        first = next(e.progress for e in events if e.HasField("progress"))
        assert first.remaining.ToTimedelta().total_seconds() > 0  # it counts the segments still to come
        done = events[-1].completed
        assert (done.segments, done.num_frames, done.fps) == (total, 97, 24)
        assert len(_frames(client, events[0].job_id)) == 97  # one MP4 at one fps: 4 s at 24 fps


def test_extend_continues_a_completed_video_on_grpc(server: tuple[ServerProcess, str]) -> None:
    with Client(server[0].address) as client:
        events = list(client.generate("a fox", num_frames=17, num_inference_steps=1, width=64, height=64))
        source = events[0].job_id
        extended = client.extend(source, "the fox runs on", 1)
        assert extended.extended_from == source
        last = list(client.watch(extended.id))[-1]
        assert last.completed.num_frames == 17 + 25 - 1  # 1 s more at 24 fps (25 frames), joined at one
        before, after = _frames(client, source), _frames(client, extended.id)
        assert after.shape == (41, 64, 64, 3)
        kept = len(before) - overlap(TI2V)  # the frames before the blended seam are the video's own
        drift = np.abs(after[:kept].astype(int) - before[:kept].astype(int)).mean()
        assert drift < 8  # the same video, encoded once more
        t2v = list(client.generate("x", model="tiny-wan2.2-t2v", num_frames=5, num_inference_steps=1))
        with pytest.raises(InvalidArgument, match=r"video: model tiny-wan2\.2-t2v cannot continue"):
            client.extend(t2v[0].job_id, "more", 1)


def test_the_sdks_extend_continues_an_uploaded_video(server: tuple[ServerProcess, str]) -> None:
    client = openai.OpenAI(base_url=server[1], api_key="unused", max_retries=0)
    clip = encode_mp4(np.random.default_rng(7).integers(0, 255, (30, 64, 96, 3), dtype=np.uint8), 24)
    extended = client.videos.extend(
        video=("clip.mp4", clip, "video/mp4"),
        prompt="and on",
        seconds="1",  # type: ignore[arg-type]
        extra_body={"model": "tiny-wan2.2-ti2v"},
    )
    done = client.videos.poll(extended.id)
    assert done.status == "completed"
    assert str(done.size) == "128x128"  # the model's own size nearest the upload's
    shown = done.model_dump()
    assert shown["num_frames"] == 29 + 25 - 1  # the upload's last 4k+1 frames, then 1 s at 24 fps
    for bad, param in [(b"not a video", "video")]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.videos.extend(video=("x.mp4", bad, "video/mp4"), prompt="x", seconds="4")
        assert refused.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as text_only:
        client.videos.extend(
            video=("clip.mp4", clip, "video/mp4"),
            prompt="x",
            seconds="4",
            extra_body={"model": "tiny-wan2.2-t2v"},
        )
    assert text_only.value.body["param"] == "model"  # type: ignore[index]
    client.close()


def test_extend_by_id_in_a_json_body(server: tuple[ServerProcess, str]) -> None:
    with Client(server[0].address) as grpc_client:
        source = list(
            grpc_client.generate("a fox", num_frames=17, num_inference_steps=1, width=64, height=64)
        )
    body = {"video": {"id": source[0].job_id}, "prompt": "on", "seconds": "1"}
    answer = httpx.post(f"{server[1]}/videos/extensions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["extended_from_video_id"] == source[0].job_id
    missing = httpx.post(f"{server[1]}/videos/extensions", json=body | {"video": {"id": "nope"}}, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "job 'nope' not found"


def test_a_worker_lost_between_segments_restarts_the_video_once(redis_url: str, tmp_path: Path) -> None:
    """Redis mode: SIGKILL the worker in segment 2; another takes the job over and makes it from segment 1."""
    model = ("--model", "tiny-wan2.2-ti2v", "--lease", "1.5")
    with gateway(redis_url) as gw, Client(gw.address) as client:
        with worker(redis_url, tmp_path, "first", *model, step_seconds=0.1) as first:
            job = client.submit(
                "a fox", model="tiny-wan2.2-ti2v", seconds=4, num_inference_steps=2, width=64, height=64
            )
            for event in client.watch(job.id):
                if event.HasField("progress") and event.progress.segment == 2:
                    first.kill()
                    break
        with worker(redis_url, tmp_path, "second", *model):
            events = list(client.watch(job.id))
    ends = [e for e in events if e.WhichOneof("kind") in ("completed", "failed", "cancelled")]
    assert [e.WhichOneof("kind") for e in ends] == ["completed"]  # one terminal event
    assert ends[0].completed.segments == len(plan(97, TI2V))
    starts = [i for i, e in enumerate(events) if e.HasField("started")]
    assert [events[i].started.worker for i in starts] == ["first", "second"]
    again = [e.progress.segment for e in events[starts[-1] :] if e.HasField("progress")]
    assert again[0] == 1  # the second attempt makes the video from its first segment
    assert len(list(tmp_path.rglob(f"{job.id}*.mp4"))) == 1  # one video
