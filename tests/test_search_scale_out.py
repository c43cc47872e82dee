"""Video search across gateways: one index on a real S3 server (SeaweedFS), Triton embedding, Redis queue.

Whichever gateway indexes a completed video, every gateway finds it; a delete through one
gateway is seen by the others.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import openai
import pytest
from harness.s3 import S3Server
from harness.servers import TritonServer
from test_search import wait_indexed

from moviola.client import Client, NotFound
from moviola.testing import ServerProcess, free_port

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
STORAGE = ("--storage-url", "s3://videos/clips")
INDEX = ("--search-index", "s3://videos/search")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.mark.timeout(180)
def test_every_gateway_finds_and_forgets_what_any_one_indexed(
    s3: S3Server, redis_url: str, triton: TritonServer, tmp_path: Path
) -> None:
    http = free_port()
    env = s3.client_env()

    def gateway(name: str, *extra: str) -> ServerProcess:
        args = ["--redis-url", redis_url, "--data-dir", str(tmp_path / name), "--triton-url", triton.url]
        return ServerProcess([*args, *STORAGE, *INDEX, *extra], env=env)

    worker = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path / "w"), "--name", "w", *STORAGE],
        program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
        worker=True,
        env=env,
    )
    with ExitStack() as stack:
        stack.enter_context(worker)
        first = stack.enter_context(gateway("a"))
        second = stack.enter_context(gateway("b", "--http-port", str(http)))
        a = stack.enter_context(Client(first.address, timeout=30))
        b = stack.enter_context(Client(second.address, timeout=30))
        jobs = {}
        for prompt in ("a red fox running through snow", "a paper boat on a rainy street"):
            done = list(a.generate(prompt, num_frames=9, num_inference_steps=2, width=64, height=64))[-1]
            assert done.WhichOneof("kind") == "completed", done
            jobs[prompt] = done.job_id
        for job_id in jobs.values():  # the simulated worker's videos look alike: by id, not by rank
            assert job_id in {h.job_id for h in wait_indexed(b, job_id).hits}
        for prompt, job_id in jobs.items():
            found = b.search_videos(text=prompt)
            assert (found.hits[0].job_id, found.hits[0].matched) == (job_id, "prompt")
            assert found.embedding_model == "siglip2"
        listed = s3.client().list_objects_v2(Bucket="videos", Prefix="search/")
        assert any(o["Key"].endswith(".lance") for o in listed.get("Contents", []))

        gone = jobs["a red fox running through snow"]
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{http}/v1", api_key="unused", max_retries=0)
        try:
            assert sdk.videos.delete(gone).deleted
        finally:
            sdk.close()
        with pytest.raises(NotFound):
            a.search_videos(job_id=gone)
        assert [h.job_id for h in a.search_videos(text="a red fox running through snow").hits] == [
            jobs["a paper boat on a rainy street"]
        ]
