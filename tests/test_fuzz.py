"""The fuzz suite, fixed seed and small (``make fuzz`` runs 10,000), and gRPC's interop-style hostile calls.

A real gateway with an auth file on a real redis-server (``harness.fuzz.Target``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from harness import fuzz

from moviola.client import Client
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc as gen_grpc
from moviola.v1 import job_pb2 as pb

EXAMPLES = int(os.environ.get("MOVIOLA_FUZZ_EXAMPLES", "300"))


@pytest.fixture
def target(redis_url: str, tmp_path: Path) -> Iterator[fuzz.Target]:
    with fuzz.Target(tmp_path, redis_url) as fuzzed:
        yield fuzzed


@pytest.mark.timeout(600)  # a few hundred real calls: about 20 s alone, minutes on a loaded machine
def test_fuzzed_requests_never_get_internal_and_the_server_still_serves(target: fuzz.Target) -> None:
    fuzz.run(target.address, target.key, 30)  # warm up: connections, caches, the first jobs
    before = fuzz.rss_bytes(target.gateway.pid)
    report = fuzz.run(target.address, target.key, EXAMPLES)
    grown = fuzz.rss_bytes(target.gateway.pid) - before
    print(f"\n{report.table()}\nRSS grew {grown / 2**20:.1f} MiB")
    assert report.bad == []
    assert sum(report.counts.values()) == EXAMPLES
    answered = {"OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
    assert answered <= set(report.counts)  # the requests reached every kind of answer
    assert grown < 150 * 2**20
    assert target.serves_a_normal_job() == "completed"


def metadata(target: fuzz.Target) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {target.key}"),)


def small(prompt: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompt=prompt, num_inference_steps=2, num_frames=5)


def test_cancel_after_begin_and_after_the_first_response(target: fuzz.Target) -> None:
    with grpc.insecure_channel(target.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        begun = stub.Generate(small("cancelled at once"), metadata=metadata(target))
        begun.cancel()
        with pytest.raises(grpc.RpcError) as cancelled:
            next(begun)
        assert cancelled.value.code() is grpc.StatusCode.CANCELLED
        answered = stub.Generate(small("cancelled after its first event"), metadata=metadata(target))
        first = next(answered)
        answered.cancel()
        with Client(target.address, api_key=target.key) as client:
            assert client.get(first.event.job_id).state == pb.JOB_STATE_QUEUED  # still there, still whole
    assert target.serves_a_normal_job() == "completed"


def test_a_deadline_shorter_than_the_job_fails_it_instead_of_leaving_it(target: fuzz.Target) -> None:
    with grpc.insecure_channel(target.address) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        call = stub.Generate(small("no worker yet"), timeout=1.0, metadata=metadata(target))
        job_id = next(call).event.job_id
        ended: grpc.StatusCode | None = None
        rest = []
        try:
            rest = list(call)
        except grpc.RpcError as late:
            ended = late.code()
        if rest:  # the gateway's once-a-second sweep failed the job in the last moments before the deadline
            assert rest[-1].event.failed.code == pb.FAILURE_CODE_DEADLINE_EXCEEDED
        else:
            assert ended is grpc.StatusCode.DEADLINE_EXCEEDED
    with Client(target.address, api_key=target.key) as client:
        events = list(client.watch(job_id))  # it ends by itself: nobody waits for it any more
        assert events[-1].failed.code == pb.FAILURE_CODE_DEADLINE_EXCEEDED


def test_oversized_messages_and_metadata_are_refused_cleanly(target: fuzz.Target) -> None:
    options = [("grpc.max_send_message_length", 64 * 2**20), ("grpc.max_metadata_size", 2**20)]
    with grpc.insecure_channel(target.address, options=options) as channel:
        stub = gen_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as big_message:
            stub.SubmitJob(
                gen.SubmitJobRequest(request=pb.GenerateRequest(prompt="x" * (17 * 2**20))),
                metadata=metadata(target),
            )
        assert big_message.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as big_headers:
            stub.ListModels(
                gen.ListModelsRequest(), metadata=(*metadata(target), ("x-padding", "p" * 40_000))
            )
        assert big_headers.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
        started = time.monotonic()
        assert stub.ListModels(gen.ListModelsRequest(), metadata=metadata(target)).models  # still serving
        assert time.monotonic() - started < 5


def test_bytes_that_are_not_the_request_message_get_invalid_argument_on_every_rpc(
    target: fuzz.Target,
) -> None:
    """grpc's own deserialisation answers UNKNOWN; every RPC answers INVALID_ARGUMENT naming its message."""
    broken = {
        "long_varint": b"\x08" + b"\xff" * 11 + b"\x01",
        "length_past_the_end": b"\x0a\xff\xff\xff\x07x",
    }
    with grpc.insecure_channel(target.address) as channel:
        for method in fuzz.methods():
            for what, raw in broken.items():
                call = fuzz.Call(method, raw, list(metadata(target)))
                with pytest.raises(grpc.RpcError) as refused:
                    _answer(channel, call)
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (method.full_name, what)
                assert f"not a valid {method.input_type.full_name} message" in str(refused.value.details())
    assert target.serves_a_normal_job() == "completed"


def _answer(channel: grpc.Channel, call: fuzz.Call) -> list[Any]:
    """Every answer to ``call``, its bytes sent as they are."""
    path = f"/{call.method.containing_service.full_name}/{call.method.name}"
    headers = tuple(call.metadata)
    if call.method.server_streaming:
        stream: Any = channel.unary_stream(path, request_serializer=fuzz.Call.serialized)
        return list(stream(call, timeout=5, metadata=headers))
    unary: Any = channel.unary_unary(path, request_serializer=fuzz.Call.serialized)
    return [unary(call, timeout=5, metadata=headers)]
