"""Every invalid field gets INVALID_ARGUMENT naming it, and nothing is queued or written."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from fakes import ScriptedPipeline
from google.rpc import error_details_pb2, status_pb2

from moviola.runtime.embedded import EmbeddedServer
from moviola.settings import Settings
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb


@pytest_asyncio.fixture
async def embedded(tmp_path: Path, cache_dir: Path) -> AsyncIterator[EmbeddedServer]:
    pipeline = ScriptedPipeline()
    settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=cache_dir, max_message_bytes=12 * 1024 * 1024)
    async with EmbeddedServer(settings, loader=lambda spec, s: pipeline) as server:
        yield server


def png(size: tuple[int, int] = (8, 8), fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size).save(out, format=fmt)
    return out.getvalue()


CASES: list[tuple[str, dict[str, object], str]] = [
    ("prompt", {"prompt": ""}, "must not be empty"),
    ("prompt", {"prompt": "   "}, "must not be empty"),
    ("prompt", {"prompt": "x" * 2001}, "limit is 2000"),
    ("negative_prompt", {"negative_prompt": "x" * 2001}, "limit is 2000"),
    ("model", {"model": "veo-3"}, "unknown model 'veo-3'"),  # sora-2 is an alias (tests/test_sora_names.py)
    ("width", {"width": 100}, "multiple of 16"),
    ("width", {"width": 1024}, "16..832"),
    ("height", {"height": 72}, "nearest valid: 64 or 80"),
    ("num_frames", {"num_frames": 20}, "nearest valid: 17 or 21"),
    ("num_frames", {"num_frames": 53}, "at most 49"),
    ("num_inference_steps", {"num_inference_steps": 51}, "1..50"),
    ("fps", {"fps": 61}, "1..60"),
    ("guidance_scale", {"guidance_scale": -1.0}, "0..20"),
    ("guidance_scale", {"guidance_scale": float("nan")}, "0..20"),
    ("guidance_scale_2", {"guidance_scale_2": 25.0}, "0..20"),
    ("image", {"image": png()}, "text-to-video only"),
    ("idempotency_key", {"idempotency_key": "k" * 129}, "at most 128"),
]


@pytest.mark.parametrize(
    ("field", "fields", "message"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_invalid_field_is_named_and_nothing_is_queued(
    embedded: EmbeddedServer, field: str, fields: dict[str, object], message: str
) -> None:
    request = pb.GenerateRequest(prompt="a fox")
    for name, value in fields.items():
        setattr(request, name, value)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for call in (
            lambda: stub.SubmitJob(gen.SubmitJobRequest(request=request)),
            lambda: stub.Generate(request).read(),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call()
            error = info.value
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            details_text = error.details() or ""
            assert details_text.startswith(f"{field}: ")
            assert message in details_text
            details = dict(error.trailing_metadata() or ())
            status = status_pb2.Status.FromString(details["grpc-status-details-bin"])
            bad = error_details_pb2.BadRequest()
            assert status.details[0].Unpack(bad)
            assert bad.field_violations[0].field == field
    assert embedded.queue.depth() == 0
    assert embedded.queue._jobs == {}
    assert not (embedded.settings.storage.data_dir / "videos").exists()


async def test_oversized_message_is_refused_by_the_transport(embedded: EmbeddedServer) -> None:
    request = pb.GenerateRequest(prompt="a fox", image=b"\0" * (13 * 1024 * 1024))
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{embedded.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitJob(gen.SubmitJobRequest(request=request))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert embedded.queue._jobs == {}


async def test_valid_request_gets_every_default_filled_in(embedded: EmbeddedServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        job = (await stub.SubmitJob(gen.SubmitJobRequest(request=pb.GenerateRequest(prompt="a fox")))).job
    r = job.request
    assert (r.model, r.width, r.height, r.num_frames, r.fps, r.num_inference_steps) == (
        "tiny-wan2.2-t2v",
        128,
        128,
        17,
        16,
        8,
    )
    assert r.guidance_scale == 5.0
    assert r.guidance_scale_2 == 4.0
    assert r.HasField("seed")


def test_image_checks_for_models_that_take_images() -> None:
    from dataclasses import replace

    from moviola.catalog import TINY_WAN22_T2V, ImageInput, ModelLimits
    from moviola.errors import InvalidRequest
    from moviola.validation import RequestDraft, validate

    i2v = replace(TINY_WAN22_T2V, image_input=ImageInput.REQUIRED, limits=ModelLimits(max_image_bytes=4096))
    models = {i2v.id: i2v}
    assert validate(RequestDraft(prompt="x", image=png()), models, i2v.id).image == png()
    assert validate(RequestDraft(prompt="x", image=png(fmt="WEBP")), models, i2v.id).image is not None
    for draft, message in [
        (RequestDraft(prompt="x"), "needs an input image"),
        (RequestDraft(prompt="x", image=b"not an image"), "not a decodable"),
        (RequestDraft(prompt="x", image=png((256, 256), "BMP")), "is 196"),
        (RequestDraft(prompt="x", image=png((4, 4), "GIF")), "must be PNG, JPEG or WebP"),
    ]:
        with pytest.raises(InvalidRequest) as info:
            validate(draft, models, i2v.id)
        assert info.value.field == "image"
        assert message in str(info.value)
