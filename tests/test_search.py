"""Video search end to end: a real embedded server indexing its videos (tiny SigLIP 2) on local disk.

With random-weight models the scores mean nothing; what the tests hold is the plumbing: a video
is found by its own prompt, by its own video and by its job id, within its tenant only, with
filters, and never again once deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import openai
import pytest
from helpers import moviola

from moviola.auth import keys
from moviola.client import Client, FailedPrecondition, InvalidArgument, NotFound, RequestOptions
from moviola.client.errors import translate
from moviola.testing import ServerProcess, free_port
from moviola.v1 import search_pb2, search_pb2_grpc

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
PROMPTS = ("a red fox running through snow", "a paper boat on a rainy street", "neon city at night")
SMALL: RequestOptions = {"num_inference_steps": 2, "num_frames": 5, "width": 64, "height": 64}

OTHER_MODEL: RequestOptions = {**SMALL, "model": "tiny-wan2.1-t2v"}


class Searching:
    def __init__(self, server: ServerProcess, http: str, made: dict[str, str]) -> None:
        self.server, self.http, self.keys = server, http, made

    def client(self, tenant: str) -> Client:
        return Client(self.server.address, api_key=self.keys[tenant])


def wait_indexed(client: Client, job_id: str, timeout: float = 60.0) -> search_pb2.SearchVideosResponse:
    """Search by the job until the index has it (indexing follows completion, off the caller's path)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.search_videos(job_id=job_id)
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def searching(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searching]:
    folder = tmp_path_factory.mktemp("search")
    auth_file = folder / "auth.json"
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    port = free_port()
    args = [
        *("--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)),
        *("--auth-file", str(auth_file), "--also-serve", "tiny-wan2.1-t2v"),
        *("--search-index", str(folder / "index")),
    ]
    with ServerProcess(args) as server:
        yield Searching(server, f"http://127.0.0.1:{port}/v1", made)


@pytest.fixture(scope="module")
def acme_jobs(searching: Searching) -> list[str]:
    with searching.client("acme") as acme:
        jobs = [acme.submit(prompt, **SMALL).id for prompt in PROMPTS]
        for job_id in jobs:
            list(acme.watch(job_id))
            wait_indexed(acme, job_id)
    return jobs


def test_a_video_is_found_by_its_prompt_its_video_and_its_job(
    searching: Searching, acme_jobs: list[str]
) -> None:
    with searching.client("acme") as acme:
        for prompt, job_id in zip(PROMPTS, acme_jobs, strict=True):
            found = acme.search_videos(text=prompt, top_k=3)
            assert found.embedding_model == "tiny-siglip2"
            assert found.hits[0].job_id == job_id
            best = found.hits[0]
            assert (best.matched, best.prompt, best.model) == ("prompt", prompt, "tiny-wan2.2-t2v")
            assert best.score == pytest.approx(1.0, abs=1e-3)
            assert len({h.job_id for h in found.hits}) == len(found.hits) == 3
            assert [h.score for h in found.hits] == sorted((h.score for h in found.hits), reverse=True)
        like = acme.search_videos(job_id=acme_jobs[1])
        assert (like.hits[0].job_id, like.hits[0].matched) == (acme_jobs[1], "video")
        assert like.hits[0].score == pytest.approx(1.0, abs=1e-3)
        video = b"".join(acme.download(acme_jobs[2]))
        assert acme.search_videos(video=video).hits[0].job_id == acme_jobs[2]


def test_filters_narrow_the_hits(searching: Searching, acme_jobs: list[str]) -> None:
    with searching.client("acme") as acme:
        other = acme.submit("a lighthouse in fog", **OTHER_MODEL).id
        list(acme.watch(other))
        wait_indexed(acme, other)
        everything = acme.search_videos(text="a lighthouse in fog", top_k=10)
        assert {h.job_id for h in everything.hits} == {*acme_jobs, other}
        only = acme.search_videos(text="a lighthouse in fog", models=["tiny-wan2.2-t2v"])
        assert {h.job_id for h in only.hits} == set(acme_jobs)
        assert len(acme.search_videos(text="a fox", top_k=1).hits) == 1
        created = acme.get(other).create_time.ToNanoseconds() / 1e9
        later = acme.search_videos(text="a fox", created_after=created)
        assert [h.job_id for h in later.hits] == [other]
        earlier = acme.search_videos(text="a fox", created_before=created)
        assert {h.job_id for h in earlier.hits} == set(acme_jobs)


def test_each_tenant_finds_only_its_own_videos(searching: Searching, acme_jobs: list[str]) -> None:
    with searching.client("globex") as globex:
        mine = globex.submit(PROMPTS[0], **SMALL).id
        list(globex.watch(mine))
        wait_indexed(globex, mine)
        found = globex.search_videos(text=PROMPTS[0], top_k=100)
        assert [h.job_id for h in found.hits] == [mine]
        with pytest.raises(NotFound, match="not in the search index"):
            globex.search_videos(job_id=acme_jobs[0])


def test_a_deleted_video_is_never_found_again(searching: Searching) -> None:
    with searching.client("acme") as acme:
        job_id = acme.submit("a kite over the dunes", **SMALL).id
        list(acme.watch(job_id))
        assert wait_indexed(acme, job_id).hits[0].job_id == job_id
        sdk = openai.OpenAI(base_url=searching.http, api_key=searching.keys["acme"], max_retries=0)
        try:
            assert sdk.videos.delete(job_id).deleted
        finally:
            sdk.close()
        with pytest.raises(NotFound):
            acme.search_videos(job_id=job_id)
        assert job_id not in {h.job_id for h in acme.search_videos(text="a kite over the dunes").hits}


def test_bad_queries_name_the_field(searching: Searching) -> None:
    with searching.client("acme") as acme:
        with pytest.raises(InvalidArgument, match="top_k") as top_k:
            acme.search_videos(text="a fox", top_k=101)
        assert top_k.value.field == "top_k"
        with pytest.raises(InvalidArgument) as empty:
            acme.search_videos(text="   ")
        assert empty.value.field == "text"
        with pytest.raises(InvalidArgument) as order:
            acme.search_videos(text="a fox", created_after=100.0, created_before=50.0)
        assert order.value.field == "created_before"
        with pytest.raises(InvalidArgument) as image:
            acme.search_videos(image=b"not an image")
        assert image.value.field == "image"


def test_a_server_without_an_index_says_how_to_get_one(client: Client) -> None:
    with pytest.raises(FailedPrecondition, match="--search-index"):
        client.search_videos(text="a fox")


def test_the_cli_searches(searching: Searching, acme_jobs: list[str]) -> None:
    env = {"MOVIOLA_API_KEY": searching.keys["acme"]}
    done = moviola(
        "search", PROMPTS[1], "--top-k", "2", "--json", "--server", searching.server.address, env=env
    )
    assert done.returncode == 0, done.stderr
    hits = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(hits) == 2
    assert (hits[0]["jobId"], hits[0]["matched"]) == (acme_jobs[1], "prompt")
    table = moviola(
        "search", "--like", acme_jobs[0], "--since", "1h", "--server", searching.server.address, env=env
    )
    assert table.returncode == 0, table.stderr
    assert acme_jobs[0] in table.stdout
    assert "tiny-siglip2" in table.stdout
    missing = moviola("search", "--server", searching.server.address, env=env)
    assert missing.returncode == 2
    assert "exactly one of TEXT" in missing.stderr


def test_an_invalid_timestamp_names_its_field(searching: Searching) -> None:
    request = search_pb2.SearchVideosRequest(text="a fox")
    request.created_after.nanos = -5
    auth = (("authorization", f"Bearer {searching.keys['acme']}"),)
    with grpc.insecure_channel(searching.server.address) as channel, pytest.raises(grpc.RpcError) as caught:
        search_pb2_grpc.SearchServiceStub(channel).SearchVideos(request, metadata=auth, timeout=30)
    error = translate(caught.value)
    assert isinstance(error, InvalidArgument)
    assert error.field == "created_after"


def test_an_expired_video_leaves_the_index(cache_dir: Path, tmp_path: Path) -> None:
    """With --retention, the sweep that deletes a video's files takes its row out of the index too."""
    args = ["--data-dir", str(tmp_path), "--cache-dir", str(cache_dir), "--retention", "6s"]
    with (
        ServerProcess([*args, "--search-index", str(tmp_path / "index")]) as server,
        Client(server.address) as c,
    ):
        job_id = c.submit("a short-lived kite", **SMALL).id
        list(c.watch(job_id))
        assert wait_indexed(c, job_id).hits[0].job_id == job_id
        deadline = time.monotonic() + 60
        while job_id in {h.job_id for h in c.search_videos(text="a short-lived kite").hits}:
            assert time.monotonic() < deadline, "the expired video stayed in the index"
            time.sleep(0.5)  # the sweep runs every 1.5 s at this retention
        with pytest.raises(NotFound):
            c.search_videos(job_id=job_id)
