"""Hostile images: refused at the door, INVALID_ARGUMENT naming ``image``, on every image input.

Generation (``Generate``, ``SubmitJob`` on an image-to-video model) and ``Embed`` share one check
(``moviola.validation.check_image``): a format allow-list and a pixel limit read before any pixel
is decoded, then a full decode, so that a truncated or corrupt file never reaches a job. Each case
is one small file, most of them a PNG header that lies about its size.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from fakes import ScriptedPipeline
from google.rpc import error_details_pb2, status_pb2
from PIL import Image

from moviola.catalog import ModelSpec
from moviola.errors import InvalidRequest
from moviola.runtime.embedded import EmbeddedServer
from moviola.settings import Settings
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc, generation_pb2_grpc
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb
from moviola.validation import (
    MAX_EMBED_TEXT_CHARS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_JOB_ID_CHARS,
    MAX_PROMPT_CHARS,
    check_image,
)

I2V = "tiny-wan2.2-i2v"

#: The 65-byte PNG of the report: a valid header claiming 30000x30000 RGB pixels, and no pixel data.
BOMB = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200007530000075300802000000e9456fed"
    "0000000849444154789c030000000001480689d20000000049454e44ae426082"
)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose chunks are all valid and whose header claims ``width`` x ``height`` (no pixels follow)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    empty = _chunk(b"IDAT", zlib.compress(b""))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + empty + _chunk(b"IEND", b"")


def encoded(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format=fmt)
    return out.getvalue()


def cut_png(width: int = 64, height: int = 64) -> bytes:
    """Every chunk whole, with its checksum, but the compressed pixels cut off half way (the header alone passes)."""
    rows = (b"\0" + bytes(i * 7 % 256 for i in range(width * 3))) * height
    pixels = zlib.compress(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = _chunk(b"IDAT", pixels[: len(pixels) // 2])
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def test_the_reports_file_is_the_header_built_here() -> None:
    assert png_header(30000, 30000) == BOMB
    assert len(BOMB) == 65


#: (name, file, what the message says)
HOSTILE = [
    ("30000x30000", BOMB, f"more than {MAX_IMAGE_PIXELS} pixels"),
    # Between Pillow's warning (89 Mpx) and its error (179 Mpx): Pillow only warns, we refuse.
    ("10000x10000", png_header(10000, 10000), "pixels"),
    # Just over our limit, under Pillow's: only our check stands between it and 151 MB of pixels.
    ("7072x7072", png_header(7072, 7072), f"is 7072x7072 pixels; the limit is {MAX_IMAGE_PIXELS} pixels"),
    ("16385x1", png_header(MAX_IMAGE_SIDE + 1, 1), f"{MAX_IMAGE_SIDE} on a side"),
    ("gif", encoded("GIF"), "must be PNG, JPEG or WebP"),
    ("bmp", encoded("BMP"), "must be PNG, JPEG or WebP"),
    ("tiff", encoded("TIFF"), "must be PNG, JPEG or WebP"),
    # Headers that pass, pixels that do not: found at submit, not by the job.
    ("truncated png", cut_png(), "truncated"),
    ("no pixel data", png_header(64, 64), "truncated"),
    ("truncated jpeg", encoded("JPEG", (64, 64))[:-200], "not a decodable"),
    ("truncated webp", encoded("WEBP", (64, 64))[:40], "not a decodable"),
]
IDS = [name for name, *_ in HOSTILE]


@pytest.mark.parametrize(("name", "data", "message"), HOSTILE, ids=IDS)
def test_the_shared_check_refuses_from_the_header(name: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_image(data, "image")
    assert caught.value.field == "image"
    assert message in caught.value.reason


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_shared_check_passes_the_allowed_formats(fmt: str) -> None:
    assert check_image(encoded(fmt)) == fmt
    assert check_image(encoded("PNG", (MAX_IMAGE_SIDE, 1))) == "PNG"  # at the limits, not beyond


@pytest_asyncio.fixture
async def embedded(tmp_path: Path, cache_dir: Path) -> AsyncIterator[EmbeddedServer]:
    """The image-to-video model (instant scripted steps) and the in-process tiny embedding models."""
    settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=cache_dir, model=I2V)

    def loader(spec: ModelSpec, _: Settings) -> ScriptedPipeline:
        return ScriptedPipeline(spec=spec)

    async with EmbeddedServer(settings, loader=loader) as server:
        yield server


def field_of(error: grpc.aio.AioRpcError) -> str:
    details = {key: value for key, value in error.trailing_metadata() or ()}
    raw = details["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    status = status_pb2.Status.FromString(raw)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return str(bad.field_violations[0].field)


async def refused(call: Callable[[], Awaitable[object]]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call()
    return info.value


@pytest.mark.parametrize(("name", "data", "message"), HOSTILE, ids=IDS)
async def test_generation_refuses_a_hostile_image_with_invalid_argument(
    embedded: EmbeddedServer, name: str, data: bytes, message: str
) -> None:
    request = pb.GenerateRequest(model=I2V, prompt="a fox", image=data)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: stub.SubmitJob(gen.SubmitJobRequest(request=request)),
            lambda: stub.Generate(request).read(),
        ]
        for call in calls:
            error = await refused(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
            assert (error.details() or "").startswith("image: ")
            assert message in (error.details() or "")
            assert field_of(error) == "image"
    assert embedded.queue._jobs == {}


@pytest.mark.parametrize(("name", "data", "message"), HOSTILE, ids=IDS)
async def test_embed_refuses_a_hostile_image_with_invalid_argument(
    embedded: EmbeddedServer, name: str, data: bytes, message: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        for model in ("tiny-siglip2", "tiny-dinov2"):
            embed_request = emb.EmbedRequest(image=data, model=model)
            error = await refused(lambda: stub.Embed(embed_request))  # noqa: B023 (awaited at once)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
            assert message in (error.details() or "")
            assert field_of(error) == "image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_allowed_images_are_still_taken_by_both(embedded: EmbeddedServer, fmt: str) -> None:
    image = encoded(fmt, (96, 64))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        generation = generation_pb2_grpc.GenerationServiceStub(channel)
        request = pb.GenerateRequest(model=I2V, prompt="a fox", image=image, num_inference_steps=1)
        events = [response.event async for response in generation.Generate(request)]
        assert events[-1].WhichOneof("kind") == "completed"
        embedding = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        result = await embedding.Embed(emb.EmbedRequest(image=image))
        assert result.dimension == len(result.vector) > 0


def test_a_long_thin_image_is_fitted_without_resizing_all_of_it() -> None:
    """16384x1 passes the header check; fitting it to 224 once meant a 3.7-million-pixel-wide resize (2.4 GB).

    Run under a 512 MiB data limit in a process of its own, where that resize fails.
    """
    script = """
import io, resource
from PIL import Image
from moviola.embed import media
out = io.BytesIO()
Image.new("RGB", (16384, 1), (200, 10, 10)).save(out, format="PNG")
resource.setrlimit(resource.RLIMIT_DATA, (512 << 20, 512 << 20))
pixels = media.load_image(out.getvalue(), 224)
print(pixels.shape, pixels[112, 112].tolist())
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(224,", "224,", "3)", "[200,", "10,", "10]"]


#: (field, request): one string or bytes field just over its limit, every other field valid.
OVERSIZED: list[tuple[str, Callable[[], object]]] = [
    ("prompt", lambda: pb.GenerateRequest(model=I2V, prompt="x" * (MAX_PROMPT_CHARS + 1))),
    ("negative_prompt", lambda: pb.GenerateRequest(model=I2V, prompt="a", negative_prompt="x" * 4_000_000)),
    ("idempotency_key", lambda: pb.GenerateRequest(model=I2V, prompt="a", idempotency_key="k" * 129)),
    ("model", lambda: pb.GenerateRequest(model="m" * 4_000_000, prompt="a")),
    ("image", lambda: pb.GenerateRequest(model=I2V, prompt="a", image=b"\x89PNG" + b"\0" * MAX_IMAGE_BYTES)),
]


@pytest.mark.parametrize(("field", "build"), OVERSIZED, ids=[field for field, _ in OVERSIZED])
async def test_every_generation_field_has_a_limit(
    embedded: EmbeddedServer, field: str, build: Callable[[], pb.GenerateRequest]
) -> None:
    request = build()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        error = await refused(lambda: stub.SubmitJob(gen.SubmitJobRequest(request=request)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field_of(error) == field
    assert "at most" in (error.details() or "") or "the limit is" in (error.details() or "")
    assert len(error.details() or "") < 200  # the field's value is never echoed back
    assert embedded.queue._jobs == {}


async def test_a_4mb_embed_text_is_refused_before_any_work(embedded: EmbeddedServer) -> None:
    """The report: 4 MB of text took 6 s and kept 400 MB. Now refused by its length, before tokenizing."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        error = await refused(lambda: stub.Embed(emb.EmbedRequest(text="fox " * 1_000_000)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_of(error) == "text"
        assert f"at most {MAX_EMBED_TEXT_CHARS} characters" in (error.details() or "")
        at_limit = await stub.Embed(emb.EmbedRequest(text="f" * MAX_EMBED_TEXT_CHARS))
        assert at_limit.dimension > 0


async def test_job_ids_have_a_limit_on_every_call(embedded: EmbeddedServer) -> None:
    long_id = "a" * (MAX_JOB_ID_CHARS + 1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embedded.port}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        embed = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: stub.GetJob(gen.GetJobRequest(job_id=long_id)),
            lambda: stub.CancelJob(gen.CancelJobRequest(job_id=long_id)),
            lambda: stub.WatchJob(gen.WatchJobRequest(job_id=long_id)).read(),
            lambda: embed.Embed(emb.EmbedRequest(job_id=long_id)),
        ]
        for call in calls:
            error = await refused(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
            assert field_of(error) == "job_id"
