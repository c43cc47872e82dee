"""The Qwen-VL embedding models (Qwen3-VL-Embedding, VLM2Vec-V2) on tiny random-weight twins.

Their real loading code (tokenizer, image processor and model from a folder, as from a hub id)
runs in-process and inside a real tritonserver, through the gateway's Embed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import start_server
from harness.servers import TritonServer
from helpers import moviola, mp4, png, scene, unit

from moviola.client import Client
from moviola.embed.encoders import Encoder, load_encoder
from moviola.embed.repository import copy_model
from moviola.testing import ServerProcess

TRITON = Path(__file__).resolve().parents[1] / "triton"
#: Triton model name -> (encoder kind, tiny twin, config folder).
MODELS = {
    "qwen3_vl_embedding": ("qwen3-vl-embedding", "tiny-qwen3-vl-embedding", TRITON / "qwen3_vl_embedding"),
    "vlm2vec_v2": ("vlm2vec-v2", "tiny-vlm2vec-v2", TRITON / "opt-in" / "vlm2vec_v2"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def encoder(request: pytest.FixtureRequest, embedding_cache: Path) -> Encoder:
    kind, twin, _ = MODELS[request.param]
    return load_encoder(kind, str(embedding_cache / twin), "cpu")


def frames(count: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (count, 448, 448, 3), dtype=np.uint8)


def test_a_batch_embeds_each_input_as_it_would_alone(encoder: Encoder) -> None:
    """Texts of different lengths pad to the longest; each vector is still its own last real token's."""
    texts = ["a fox", "a paper boat on a rainy street at night"]
    together = encoder.embed_texts(texts)
    assert together.shape == (2, 32)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(together[i], encoder.embed_texts([text])[0], atol=1e-4)
    pixels = frames(3)
    batch = encoder.embed_images(pixels)
    assert batch.shape == (3, 32)
    np.testing.assert_allclose(batch[2], encoder.embed_images(pixels[2:])[0], atol=1e-4)


def test_different_inputs_get_different_vectors_and_the_same_input_the_same(encoder: Encoder) -> None:
    assert encoder.image_size == 448
    assert encoder.accepts_text
    texts = encoder.embed_texts(["a red fox", "a red fox", "neon city"])
    np.testing.assert_array_equal(texts[0], texts[1])
    assert np.abs(texts[0] - texts[2]).max() > 1e-3
    images = encoder.embed_images(np.concatenate([frames(1, seed=1), frames(1, seed=2)]))
    assert np.isfinite(images).all()
    assert np.abs(images[0] - images[1]).max() > 1e-3


@pytest.fixture(scope="module")
def qwen_triton(tmp_path_factory: pytest.TempPathFactory, embedding_cache: Path) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("qwen-repository")
    for _, twin, folder in MODELS.values():
        copy_model(folder, repository, weights=str(embedding_cache / twin), torch_threads=1)
    with TritonServer(repository, sorted(MODELS)) as server:
        yield server


@pytest.fixture(scope="module")
def qwen_gateway(cache_dir: Path, data_dir: Path, qwen_triton: TritonServer) -> Iterator[ServerProcess]:
    with start_server(cache_dir, data_dir, "--triton-url", qwen_triton.url) as process:
        yield process


def test_triton_serves_them_and_embed_reaches_them(
    qwen_gateway: ServerProcess, embedding_cache: Path
) -> None:
    with Client(qwen_gateway.address, timeout=60) as client:
        listed = {m.id: m for m in client.list_embedding_models()}
        assert set(listed) == set(MODELS)
        for name, (kind, twin, _) in MODELS.items():
            assert (listed[name].accepts_text, listed[name].image_size, listed[name].license) == (
                True,
                448,
                "Apache-2.0",
            )
            local = load_encoder(kind, str(embedding_cache / twin), "cpu")
            text = client.embed(text="a red fox running through snow", model=name)
            expected = local.embed_texts(["a red fox running through snow"])[0]
            served = unit(text.vector)
            cosine = np.dot(served, expected) / (np.linalg.norm(served) * np.linalg.norm(expected))
            assert float(cosine) == pytest.approx(1.0, abs=1e-4)
            image = client.embed(image=png(scene(1, size=96)[0]), model=name)
            assert image.dimension == 32
            video = client.embed(video=mp4(scene(9)), model=name, frame_count=3, return_frame_embeddings=True)
            assert (video.sampled_frames, len(video.frames)) == (3, 3)


def test_embedding_models_shows_each_licence(qwen_gateway: ServerProcess) -> None:
    listed = moviola("embedding-models", "--server", qwen_gateway.address)
    assert listed.returncode == 0, listed.stderr
    assert "licence" in listed.stdout
    assert "Apache-2.0" in listed.stdout
