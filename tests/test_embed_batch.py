"""EmbedBatch: many inputs in one call, each answered as Embed would answer it alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import start_server
from harness.servers import TritonServer
from helpers import mp4, png, scene

from moviola.client import Client, EmbedOptions
from moviola.client.errors import InvalidArgument
from moviola.testing import ServerProcess
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc

TEXTS = ["a red fox in snow", "the city at night", "waves on a beach", "a cat asleep"]


def _same(batch: emb.EmbedResponse, alone: emb.EmbedResponse) -> None:
    assert batch.model == alone.model
    assert batch.dimension == alone.dimension
    np.testing.assert_allclose(np.array(batch.vector), np.array(alone.vector), atol=1e-5)


def _mixed(client: Client, frames: str) -> None:
    image = png(scene(1, size=96)[0])
    video = mp4(scene(9))
    requests: list[EmbedOptions] = [
        *[EmbedOptions(text=t) for t in TEXTS],
        {"image": image, "model": frames},
        {"text": "   "},  # fails alone: INVALID_ARGUMENT naming text
        {"video": video, "model": frames, "frame_count": 3},
        {"text": "a fox", "model": "no-such-model"},
    ]
    results = client.embed_batch(requests)
    assert len(results) == len(requests)
    for text, result in zip(TEXTS, results, strict=False):
        _same(result.embedding, client.embed(text=text))
    _same(results[4].embedding, client.embed(image=image, model=frames))
    blank = results[5]
    assert blank.WhichOneof("result") == "error"
    assert (blank.error.code, blank.error.field) == ("INVALID_ARGUMENT", "text")
    assert results[6].embedding.sampled_frames == 3
    _same(results[6].embedding, client.embed(video=video, model=frames, frame_count=3))
    unknown = results[7].error
    assert (unknown.code, unknown.field) == ("INVALID_ARGUMENT", "model")
    assert "no-such-model" in unknown.message


def test_a_batch_gives_each_request_what_it_would_get_alone(client: Client) -> None:
    _mixed(client, "tiny-dinov2")


def test_a_request_that_cannot_be_read_fails_alone(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        reply = stub.EmbedBatch(
            emb.EmbedBatchRequest(
                requests=[emb.EmbedRequest(), emb.EmbedRequest(text="a fox", pooling=99)]  # type: ignore[arg-type]
            ),
            timeout=30,
        )
    assert [(r.error.code, r.error.field) for r in reply.results] == [
        ("INVALID_ARGUMENT", "input"),
        ("INVALID_ARGUMENT", "pooling"),
    ]


@pytest.mark.parametrize(("count", "field"), [(0, "requests"), (257, "requests")])
def test_an_empty_or_oversized_batch_is_invalid_argument(client: Client, count: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.embed_batch([{"text": f"t{i}"} for i in range(count)])
    assert info.value.field == field


@pytest.fixture(scope="module")
def via_triton(cache_dir: Path, data_dir: Path, triton: TritonServer) -> Iterator[Client]:
    with (
        start_server(cache_dir, data_dir, "--triton-url", triton.url) as process,
        Client(process.address, timeout=30) as client,
    ):
        yield client


def test_a_batch_through_triton_matches_single_calls(via_triton: Client) -> None:
    _mixed(via_triton, "dinov2")
