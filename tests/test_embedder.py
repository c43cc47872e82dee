"""Unit tests of the ``Embedder`` over an in-memory backend: defaults, priorities, batching, concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEmbeddingBackend
from helpers import mp4, png, scene

from moviola.embed.backend import EmbeddingModel, Priority
from moviola.embed.service import (
    Embedder,
    EmbedQuery,
    ImageInput,
    TextInput,
    VideoInput,
)
from moviola.errors import FailedPrecondition, InvalidRequest
from moviola.jobs import JobRecord
from moviola.settings import EmbedSettings
from moviola.storage.local import LocalStorage

CROSS = EmbeddingModel("cross", image_size=32, accepts_text=True, max_batch=4)
FRAMES = EmbeddingModel("frames", image_size=16, accepts_text=False, max_batch=4)
WORDS = EmbeddingModel("words", image_size=None, accepts_text=True, max_batch=4)


async def no_jobs(job_id: str) -> JobRecord:
    raise AssertionError("no job lookups expected")


def embedder(backend: FakeEmbeddingBackend, **settings: object) -> Embedder:
    storage = LocalStorage(Path("/nonexistent/videos"))  # no job is looked up here
    return Embedder(backend, jobs=no_jobs, storage=storage, settings=EmbedSettings(**settings))  # type: ignore[arg-type]


async def test_defaults_prefer_the_configured_then_the_cross_modal_model() -> None:
    backend = FakeEmbeddingBackend([WORDS, FRAMES, CROSS])
    plain = embedder(backend)
    assert (await plain.embed(EmbedQuery(TextInput("a fox")))).model == "cross"
    assert (await plain.embed(EmbedQuery(ImageInput(png(scene(1)[0]))))).model == "cross"
    configured = embedder(backend, model="frames")
    assert (await configured.embed(EmbedQuery(ImageInput(png(scene(1)[0]))))).model == "frames"
    assert (await configured.embed(EmbedQuery(TextInput("a fox")))).model == "cross"  # frames takes no text
    listing = {m.model.name: (m.default_for_text, m.default_for_images) for m in await configured.models()}
    assert listing == {"cross": (True, False), "frames": (False, True), "words": (False, False)}


async def test_no_model_for_the_input_is_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition):
        await embedder(FakeEmbeddingBackend([WORDS])).embed(EmbedQuery(ImageInput(png(scene(1)[0]))))


async def test_queries_are_interactive_and_video_frames_bulk_in_batches_of_the_models_size() -> None:
    backend = FakeEmbeddingBackend([FRAMES, CROSS])
    service = embedder(backend)
    await service.embed(EmbedQuery(TextInput("a fox")))
    await service.embed(EmbedQuery(ImageInput(png(scene(1)[0])), model="frames"))
    assert [(kind, n, p) for _, kind, n, p in backend.calls] == [
        ("texts", 1, Priority.INTERACTIVE),
        ("images", 1, Priority.INTERACTIVE),
    ]
    backend.calls.clear()
    result = await service.embed(
        EmbedQuery(VideoInput(mp4(scene(10))), model="frames", frame_count=10, return_frames=True)
    )
    assert sorted(n for *_, n, _ in backend.calls) == [2, 4, 4]
    assert {p for *_, p in backend.calls} == {Priority.BULK}
    assert result.sampled_frames == 10
    assert len(result.frames) == 10
    assert float(np.linalg.norm(result.vector)) == pytest.approx(1.0, abs=1e-6)


async def test_a_backend_that_decodes_images_gets_the_file_as_sent_others_get_pixels() -> None:
    decoding = EmbeddingModel("decoding", image_size=16, accepts_text=False, max_batch=4, decodes_images=True)
    backend = FakeEmbeddingBackend([decoding, FRAMES])
    service = embedder(backend)
    image = png(scene(1, size=40)[0])
    forwarded = await service.embed(EmbedQuery(ImageInput(image), model="decoding"))
    decoded = await service.embed(EmbedQuery(ImageInput(image), model="frames"))
    assert backend.files == [image]
    assert [kind for _, kind, *_ in backend.calls] == ["files", "images"]
    np.testing.assert_allclose(forwarded.vector, decoded.vector, atol=1e-6)  # same pixels either way
    with pytest.raises(InvalidRequest) as caught:  # the header is checked before anything is sent
        await service.embed(EmbedQuery(ImageInput(b"GIF89a broken"), model="decoding"))
    assert caught.value.field == "image"
    assert len(backend.calls) == 2


async def test_concurrency_is_limited_and_frees_its_slots() -> None:
    backend = FakeEmbeddingBackend([FRAMES])
    backend.gate = asyncio.Event()
    service = embedder(backend, concurrency=2)
    image = png(scene(1)[0])
    calls = [asyncio.create_task(service.embed(EmbedQuery(ImageInput(image)))) for _ in range(5)]
    for _ in range(2):
        await backend.entered.get()
    for _ in range(5):
        await asyncio.sleep(0)  # give the other three every chance to get in (they must not)
    assert backend.running == 2
    assert backend.entered.empty()
    backend.gate.set()
    results = await asyncio.gather(*calls)
    assert len(results) == 5
    assert backend.most_running == 2


async def test_video_uri_must_be_a_file_uri_inside_a_root(tmp_path: Path) -> None:
    from moviola.embed.service import VideoUriInput
    from moviola.errors import NotFound, PermissionDenied

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a.mp4").write_bytes(mp4(scene(5)))
    (outside / "b.mp4").write_bytes(mp4(scene(5)))
    (root / "link.mp4").symlink_to(outside / "b.mp4")
    service = embedder(FakeEmbeddingBackend([FRAMES]), video_roots=(root,))
    assert (await service.embed(EmbedQuery(VideoUriInput((root / "a.mp4").as_uri())))).sampled_frames == 5
    for uri in (
        (outside / "b.mp4").as_uri(),
        (root / "link.mp4").as_uri(),
        f"file://{root}/../outside/b.mp4",
    ):
        with pytest.raises(PermissionDenied):
            await service.embed(EmbedQuery(VideoUriInput(uri)))
    with pytest.raises(NotFound):
        await service.embed(EmbedQuery(VideoUriInput((root / "missing.mp4").as_uri())))
    with pytest.raises(InvalidRequest):
        await service.embed(EmbedQuery(VideoUriInput("s3://bucket/a.mp4")))
