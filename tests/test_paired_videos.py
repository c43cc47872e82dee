"""Long videos on a text-to-video model that continues on its image-to-video partner (``continue_with``):
the tiny Wan2.2-T2V-A14B twin makes the first window, the tiny I2V twin the rest."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import redis
from processes import gateway, worker

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client, Unavailable
from moviola.errors import InvalidRequest
from moviola.segments import plan
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb
from moviola.validation import RequestDraft, validate

T2V, I2V = BUILTIN_MODELS["tiny-wan2.2-t2v"], BUILTIN_MODELS["tiny-wan2.2-i2v"]
#: 4 s at 16 fps: 65 frames, past the twin's window of 49.
FRAMES = 65


def test_the_partner_must_be_served_for_a_long_video() -> None:
    long = RequestDraft(prompt="x", seconds="4")
    both = {T2V.id: T2V, I2V.id: I2V}
    assert validate(long, both, T2V.id).num_frames == FRAMES
    with pytest.raises(InvalidRequest) as refused:
        validate(long, {T2V.id: T2V}, T2V.id)
    assert refused.value.field == "seconds"
    assert "serve that model too" in refused.value.reason
    assert I2V.id in refused.value.reason
    with pytest.raises(InvalidRequest) as frames:
        validate(RequestDraft(prompt="x", num_frames=FRAMES), {T2V.id: T2V}, T2V.id)
    assert frames.value.field == "num_frames"


@pytest.fixture(scope="module")
def server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    folder = tmp_path_factory.mktemp("paired")
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir)]
    with ServerProcess([*args, "--model", T2V.id, "--also-serve", I2V.id]) as running:
        yield running, folder


def _frame_count(client: Client, job_id: str) -> int:
    with av.open(io.BytesIO(b"".join(client.download(job_id))), mode="r") as container:
        return sum(1 for _ in container.decode(video=0))


def _stored(folder: Path) -> set[str]:
    return {path.name for path in folder.rglob("*") if path.is_file() and "part-" in path.name}


def test_the_first_window_here_the_rest_on_the_partner(server: tuple[ServerProcess, Path]) -> None:
    running, folder = server
    with Client(running.address) as client:
        request = pb.GenerateRequest(
            prompt="a fox", model=T2V.id, seconds=4, num_inference_steps=2, width=64, height=64
        )
        events = list(client.generate(request))
        steps = [
            (e.progress.segment, e.progress.total_segments, e.progress.step)
            for e in events
            if e.HasField("progress")
        ]
        total = 1 + len(plan(FRAMES, I2V, made=T2V.limits.max_frames))
        assert total == 2
        assert steps == [(s, total, step) for s in range(1, total + 1) for step in (1, 2)]
        done = events[-1].completed
        assert (done.segments, done.num_frames, done.fps, done.model) == (total, FRAMES, 16, T2V.id)
        assert _frame_count(client, events[0].job_id) == FRAMES
        # The part is the server's own: no caller lists it, and its files are gone.
        jobs, _ = client.list_jobs(page_size=100)
        assert events[0].job_id in {job.id for job in jobs}
        assert {job.model for job in jobs} == {T2V.id}
        assert _stored(folder) == set()
        # Its extension runs on the partner, which continues videos.
        extended = client.extend(events[0].job_id, "the fox runs on", 1)
        assert extended.model == I2V.id
        last = list(client.watch(extended.id))[-1]
        assert last.completed.num_frames == FRAMES + 17 - 1  # 1 s at 16 fps, joined at one frame


def test_a_cancel_during_the_partners_segment_cancels_both(server: tuple[ServerProcess, Path]) -> None:
    running, folder = server
    with Client(running.address) as client:
        request = pb.GenerateRequest(
            prompt="a fox", model=T2V.id, seconds=4, num_inference_steps=40, width=64, height=64
        )
        kinds = []
        for event in client.generate(request):
            kinds.append(event.WhichOneof("kind"))
            if event.HasField("progress") and event.progress.segment == 2 and event.progress.step == 1:
                client.cancel(event.job_id)
        assert kinds[-1] == "cancelled"
        assert "completed" not in kinds
        assert _stored(folder) == set()  # the part ended and was cleaned before the job's end was told


def test_redis_a_first_window_worker_lost_takes_up_the_same_part(redis_url: str, tmp_path: Path) -> None:
    """Redis mode: the T2V worker dies while the I2V worker makes the rest; another T2V worker runs the job
    again, takes up the part the first one submitted (one part, one video), and the job completes once."""
    t2v = ("--model", T2V.id, "--lease", "1.5")
    partner_args = ("--model", I2V.id)
    with (
        gateway(redis_url) as gw,
        Client(gw.address) as client,
        worker(redis_url, tmp_path, "partner", *partner_args, step_seconds=0.2) as partner,
    ):
        with worker(redis_url, tmp_path, "first", *t2v, step_seconds=0.02) as first:
            job = client.submit("a fox", model=T2V.id, seconds=4, num_inference_steps=4, width=64, height=64)
            for event in client.watch(job.id):
                if event.HasField("progress") and event.progress.segment == 2:
                    first.kill()
                    break
        with worker(redis_url, tmp_path, "second", *t2v):
            events = list(client.watch(job.id))
        ran = [line for line in partner.log_lines if " ended: " in line]
    assert len(ran) == 1, ran  # the partner made the rest once: the second run took up the first's part
    ends = [
        e.WhichOneof("kind") for e in events if e.WhichOneof("kind") in ("completed", "failed", "cancelled")
    ]
    assert ends == ["completed"]
    assert (events[-1].completed.segments, events[-1].completed.num_frames) == (2, FRAMES)
    assert [e.started.worker for e in events if e.HasField("started")] == ["first", "second"]
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    parts = [key for key in store.scan_iter("moviola:job:*") if store.hget(key, "model") == I2V.id]
    assert parts == []  # the one part was forgotten once the job took its video
    assert len(list(tmp_path.rglob(f"{job.id}*.mp4"))) == 1  # one video
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "part-" in p.name]


def test_redis_a_long_video_needs_a_live_partner_worker(redis_url: str, tmp_path: Path) -> None:
    """Without a live worker of the partner, a long video is refused UNAVAILABLE naming what to start;
    one window is still taken."""
    with (
        ServerProcess(["--redis-url", redis_url]) as gw,
        Client(gw.address) as client,
        worker(redis_url, tmp_path, "t2v", "--model", T2V.id),
    ):
        with pytest.raises(Unavailable) as refused:
            client.submit("a fox", model=T2V.id, seconds=4, width=64, height=64)
        assert f"start one (moviola worker --model {I2V.id})" in refused.value.message
        assert refused.value.retry_after is not None
        one = client.submit("a fox", model=T2V.id, num_frames=17, num_inference_steps=1, width=64, height=64)
        assert list(client.watch(one.id))[-1].HasField("completed")
