"""Extensions and edits in Redis mode: a gateway, real worker processes, and the videos on a real S3 (SeaweedFS).

The videos extended and edited are made by simulated workers that are stopped before the real
ones start, so the worker that continues or remakes a video reads it from S3, stored there by
another process: what the embedded server (one process, one disk) cannot show.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import av
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from harness.s3 import S3Server

from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client
from moviola.segments import overlap
from moviola.testing import ServerProcess, free_port

TI2V, WAN21 = "tiny-wan2.2-ti2v", "tiny-wan2.1-t2v"  # the tiny models that extend, and edit
STORAGE = ("--storage-url", "s3://videos/derived")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _frames(client: Client, job_id: str) -> npt.NDArray[np.uint8]:
    with av.open(io.BytesIO(b"".join(client.download(job_id))), mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.timeout(240)
def test_real_workers_extend_and_edit_videos_another_process_stored_on_s3(
    s3: S3Server, redis_url: str, tmp_path: Path, cache_dir: Path
) -> None:
    env, http = s3.client_env(), free_port()

    def worker(model: str, name: str, *, simulated: bool) -> ServerProcess:
        args = [
            "--redis-url",
            redis_url,
            "--data-dir",
            str(tmp_path / name),
            "--name",
            name,
            "--model",
            model,
        ]
        if simulated:  # black frames, no torch: the sources, made in a second
            program = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
            return ServerProcess([*args, *STORAGE], program=program, worker=True, env=env)
        return ServerProcess([*args, *STORAGE, "--cache-dir", str(cache_dir)], worker=True, env=env)

    gateway = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path / "gw"), *STORAGE, "--http-port", str(http)],
        env=env,
    )
    with gateway, Client(gateway.address, timeout=60) as client:
        with worker(TI2V, "sim-ti2v", simulated=True), worker(WAN21, "sim-wan21", simulated=True):
            source = list(
                client.generate(
                    "a fox", model=TI2V, num_frames=17, num_inference_steps=2, width=64, height=64
                )
            )[-1]
            to_edit = list(
                client.generate(
                    "a fox", model=WAN21, num_frames=9, num_inference_steps=2, width=64, height=64
                )
            )[-1]
        for done in (source, to_edit):
            assert done.WhichOneof("kind") == "completed", done
            assert done.completed.video_uri.startswith("s3://videos/derived/")  # and the workers are gone

        real = [worker(TI2V, "ti2v", simulated=False), worker(WAN21, "wan21", simulated=False)]
        with ExitStack() as running:
            for process in real:
                running.callback(process.stop)  # each stopped, even if the other fails to start
            with ThreadPoolExecutor(2) as starting:  # both models load at once
                list(starting.map(ServerProcess.start, real))
            body = {"video": {"id": source.job_id}, "prompt": "the fox runs on", "seconds": "1"}
            answer = httpx.post(f"http://127.0.0.1:{http}/v1/videos/extensions", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
            extension = answer.json()["id"]
            assert answer.json()["extended_from_video_id"] == source.job_id
            edit = client.edit(to_edit.job_id, "a wolf")
            assert edit.edited_from == to_edit.job_id
            events = {job: list(client.watch(job, timeout=180)) for job in (extension, edit.id)}

        for job, name in ((extension, "ti2v"), (edit.id, "wan21")):
            assert events[job][-1].WhichOneof("kind") == "completed", events[job][-1]
            assert [e.started.worker for e in events[job] if e.HasField("started")] == [name]
        longer, edited = events[extension][-1].completed, events[edit.id][-1].completed
        assert (longer.num_frames, longer.fps) == (17 + 25 - 1, 24)  # 1 s more at 24 fps, joined at one
        assert (edited.num_frames, edited.width, edited.height) == (9, 64, 64)  # the source's
        frames = _frames(client, extension)
        assert frames.shape == (41, 64, 64, 3)
        kept = 17 - overlap(BUILTIN_MODELS[TI2V])
        assert frames[:kept].mean() < 8  # the simulated worker's black frames, read back from S3
