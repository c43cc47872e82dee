"""Embed on the embedded default: tiny DINOv2 and SigLIP run in-process, no Triton."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers import mp4, path_of, png, running_generation, scene, unit

from moviola.client import Client
from moviola.client.errors import InvalidArgument, MoviolaError
from moviola.v1 import job_pb2 as pb

TEXT_MODEL = "tiny-siglip2"
FRAME_MODEL = "tiny-dinov2"


def norm(vector: object) -> float:
    return float(np.linalg.norm(unit(vector)))


def test_text_is_embedded_by_the_cross_modal_model_by_default(client: Client) -> None:
    first = client.embed(text="a red fox running through snow")
    assert first.model == TEXT_MODEL
    assert first.dimension == len(first.vector) == 32
    assert norm(first.vector) == pytest.approx(1.0, abs=1e-5)
    again = client.embed(text="a red fox running through snow")
    assert list(again.vector) == list(first.vector)
    other = client.embed(text="the city at night")
    assert list(other.vector) != list(first.vector)


def test_image_vectors_are_normalised_deterministic_and_model_specific(client: Client) -> None:
    image = png(scene(1, size=96)[0])
    dino = client.embed(image=image, model=FRAME_MODEL)
    assert dino.model == FRAME_MODEL
    assert dino.dimension == 32
    assert norm(dino.vector) == pytest.approx(1.0, abs=1e-5)
    assert list(client.embed(image=image, model=FRAME_MODEL).vector) == list(dino.vector)
    siglip = client.embed(image=image)
    assert siglip.model == TEXT_MODEL
    assert list(siglip.vector) != list(dino.vector)


def test_video_frames_pool_to_the_returned_vector(client: Client) -> None:
    video = mp4(scene(17))
    result = client.embed(video=video, model=FRAME_MODEL, frame_count=5, return_frame_embeddings=True)
    assert result.sampled_frames == 5
    assert len(result.frames) == 5
    indices = [f.frame_index for f in result.frames]
    assert indices == sorted(set(indices))
    assert indices[0] < 4
    assert indices[-1] > 12
    times = [f.time_seconds for f in result.frames]
    assert times == pytest.approx([i / 8 for i in indices], abs=1e-3)
    frames = np.stack([unit(f.vector) for f in result.frames])
    assert np.linalg.norm(frames, axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    pooled = frames.mean(axis=0)
    assert unit(result.vector) == pytest.approx(pooled / np.linalg.norm(pooled), abs=1e-5)
    assert len({tuple(f.vector) for f in result.frames}) == 5  # the frames differ


def test_frames_per_second_sampling(client: Client) -> None:
    result = client.embed(video=mp4(scene(16), fps=8), frames_per_second=2, return_frame_embeddings=True)
    assert [f.frame_index for f in result.frames] == [0, 4, 8, 12]


def test_temporal_pooling_keeps_order_that_mean_pooling_ignores(client: Client) -> None:
    frames = scene(12)
    forward, backward = mp4(frames), mp4(frames[::-1])
    mean_f = unit(client.embed(video=forward, model=FRAME_MODEL, frame_count=12).vector)
    mean_b = unit(client.embed(video=backward, model=FRAME_MODEL, frame_count=12).vector)
    assert float(mean_f @ mean_b) > 0.999  # the same frames
    temporal_f = client.embed(video=forward, model=FRAME_MODEL, frame_count=12, pooling="temporal")
    temporal_b = client.embed(video=backward, model=FRAME_MODEL, frame_count=12, pooling="temporal")
    assert temporal_f.dimension == 5 * 32
    assert norm(temporal_f.vector) == pytest.approx(1.0, abs=1e-5)
    assert float(unit(temporal_f.vector) @ unit(temporal_b.vector)) < float(mean_f @ mean_b) - 1e-3


def test_a_generated_job_is_embedded_by_id_and_by_uri(client: Client, data_dir: Path) -> None:
    events = list(client.generate("a red fox", num_frames=9, num_inference_steps=2, seed=1))
    done = events[-1].completed
    by_id = client.embed(job_id=events[0].job_id, model=FRAME_MODEL, return_frame_embeddings=True)
    by_bytes = client.embed(video=path_of(done.video_uri).read_bytes(), model=FRAME_MODEL)
    by_uri = client.embed(video_uri=done.video_uri, model=FRAME_MODEL)
    assert by_id.sampled_frames == 8
    assert list(by_id.vector) == list(by_bytes.vector) == list(by_uri.vector)


def test_embedding_does_not_wait_for_a_running_generation(client: Client) -> None:
    with running_generation(client, seed=2) as job_id:
        started = time.monotonic()
        client.embed(text="a query")
        client.embed(video=mp4(scene(9)), model=FRAME_MODEL)
        elapsed = time.monotonic() - started
        job = client.get(job_id)
        assert job.state == pb.JOB_STATE_RUNNING, f"embeddings took {elapsed:.1f} s, the job ended first"
        assert job.progress.step < 50


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"image": b"not an image"}, "image"),
        ({"image": b""}, "image"),
        ({"video": b"not a video at all"}, "video"),
        ({"text": "   "}, "text"),
        ({"text": "a fox", "model": "no-such-model"}, "model"),
        ({"text": "a fox", "model": FRAME_MODEL}, "model"),
        ({"video": b"x", "frame_count": 100000}, "frame_count"),
        ({"video": b"x", "frame_count": 4, "frames_per_second": 2.0}, "frames_per_second"),
        ({"video": b"x", "frames_per_second": -1.0}, "frames_per_second"),
        ({"video_uri": "https://example.com/a.mp4"}, "video_uri"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(
    client: Client, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.embed(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_video_uri_outside_the_allowed_folders_is_refused(client: Client, tmp_path: Path) -> None:
    outside = tmp_path / "v.mp4"
    outside.write_bytes(mp4(scene(5)))
    with pytest.raises(MoviolaError) as caught:
        client.embed(video_uri=outside.as_uri())
    assert caught.value.code.name == "PERMISSION_DENIED"


def test_missing_files_and_jobs_are_not_found(client: Client, data_dir: Path) -> None:
    for options in ({"video_uri": (data_dir / "nope.mp4").as_uri()}, {"job_id": "0" * 32}):
        with pytest.raises(MoviolaError) as caught:
            client.embed(**options)  # type: ignore[arg-type]
        assert caught.value.code.name == "NOT_FOUND"


def test_a_job_without_a_video_yet_is_failed_precondition(client: Client) -> None:
    job = client.submit("later", num_frames=9, num_inference_steps=50)
    try:
        with pytest.raises(MoviolaError) as caught:
            client.embed(job_id=job.id)
        assert caught.value.code.name == "FAILED_PRECONDITION"
    finally:
        client.cancel(job.id)


def test_models_are_listed_with_what_they_take_and_the_defaults(client: Client) -> None:
    models = {m.id: m for m in client.list_embedding_models()}
    assert set(models) == {TEXT_MODEL, FRAME_MODEL}
    siglip, dino = models[TEXT_MODEL], models[FRAME_MODEL]
    assert (siglip.accepts_text, siglip.accepts_images, siglip.image_size) == (True, True, 224)
    assert (dino.accepts_text, dino.accepts_images, dino.image_size) == (False, True, 224)
    assert siglip.default_for_text
    assert siglip.default_for_images
    assert not dino.default_for_text
    assert not dino.default_for_images
