"""Unit tests of the embedding parts below the service: pooling, sampling, the text wire format, the repository."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import mp4, scene

from moviola.embed import media, pooling
from moviola.embed.encoders import ENCODERS
from moviola.embed.repository import copy_model, read_config, read_repository
from moviola.embed.wire import decode_texts, encode_texts
from moviola.errors import InvalidRequest

TRITON = Path(__file__).resolve().parents[1] / "triton"


def frames(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return pooling.normalize(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


def test_mean_pooling_is_the_normalised_mean() -> None:
    f = frames(5)
    expected = f.mean(axis=0) / np.linalg.norm(f.mean(axis=0))
    assert pooling.mean(f) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 32])
def test_temporal_pooling_has_fixed_size_and_unit_norm_for_any_frame_count(n: int) -> None:
    vector = pooling.temporal(frames(n))
    assert vector.shape == ((pooling.SEGMENTS + 1) * 8,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_temporal_pooling_tells_order_and_motion_apart() -> None:
    f = frames(8)
    same = pooling.temporal(f)
    assert float(same @ pooling.temporal(f.copy())) == pytest.approx(1.0, abs=1e-6)
    assert float(same @ pooling.temporal(f[::-1])) < 0.99  # same frames, other order
    still = np.repeat(f[:1], 8, axis=0)
    assert float(pooling.temporal(still)[-8:] @ np.ones(8)) == 0.0  # no motion: a zero motion part


def test_zero_vectors_stay_zero() -> None:
    assert pooling.normalize(np.zeros((2, 3), np.float32)).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_texts_survive_the_wire_format() -> None:
    texts = ["a fox", "", "ünïcödé ✓ 狐", "x" * 300]
    rows = encode_texts(texts)
    assert rows.dtype == np.uint8
    assert rows.shape == (4, len(texts[3]))
    assert decode_texts(rows) == texts


def test_count_sampling_spreads_evenly_and_fps_sampling_follows_time() -> None:
    video = mp4(scene(20), fps=10)
    by_count = media.sample_video(video, media.Sampling(count=4), 32)
    assert by_count.indices == [2, 7, 12, 17]
    assert by_count.pixels.shape == (4, 32, 32, 3)
    by_rate = media.sample_video(video, media.Sampling(fps=2.5), 32)
    assert by_rate.indices == [0, 4, 8, 12, 16]
    assert by_rate.times == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6], abs=1e-3)
    everything = media.sample_video(video, media.Sampling(count=100), 32)
    assert everything.indices == list(range(20))


def test_too_many_sampled_frames_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        media.sample_video(mp4(scene(20), fps=10), media.Sampling(fps=10, limit=5), 32)
    assert caught.value.field == "frames_per_second"


def test_fit_resizes_the_short_side_and_crops_the_centre() -> None:
    from PIL import Image

    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, 40:80] = 255  # a white centre third
    fitted = media.fit(Image.fromarray(wide), 20)
    assert fitted.shape == (20, 20, 3)
    assert fitted[:, 3:17].min() > 200  # the centre is kept


def test_every_shipped_triton_model_is_configured_for_the_adapter() -> None:
    models = read_repository(TRITON) + read_repository(TRITON / "opt-in")
    assert {m.name for m in models} == {
        "dinov2",
        "siglip2",
        "all_minilm_l6_v2",
        "qwen3_vl_embedding",
        "jina_embeddings_v4",
        "vlm2vec_v2",
    }
    for model in models:
        assert model.encoder in ENCODERS
        config = read_config(model.folder)
        assert config.backend == "python"
        assert config.name == model.folder.name
        assert [o.name for o in config.output] == ["EMBEDDING"]
        inputs = {i.name: i for i in config.input}
        assert set(inputs) <= {"IMAGE", "IMAGE_FILE", "TEXT"}
        assert ("IMAGE" in inputs) == ("IMAGE_FILE" in inputs)  # image models also take the file
        assert all(i.optional for i in inputs.values())
        assert all(inputs[name].allow_ragged_batch for name in {"IMAGE_FILE", "TEXT"} & set(inputs))
        batching = config.dynamic_batching
        assert batching.priority_levels == 2
        assert batching.default_queue_policy.max_queue_size > 0
        source = (model.folder / "1" / "model.py").read_text()
        assert "TritonPythonModel" in {
            n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.alias)
        }
        assert config.parameters["license"].string_value  # every model says what its weights allow
    opt_in = (TRITON / "opt-in" / "jina_embeddings_v4" / "config.pbtxt").read_text()
    assert "Qwen Research License" in opt_in
    jina = read_config(TRITON / "opt-in" / "jina_embeddings_v4")
    assert jina.parameters["license"].string_value.startswith("Qwen Research License")
    assert "NOT Apache 2.0" in opt_in


def test_copy_model_swaps_the_weights_and_keeps_the_rest(tmp_path: Path) -> None:
    target = copy_model(TRITON / "dinov2", tmp_path, weights="/models/tiny", torch_threads=1)
    copied, original = read_config(target), read_config(TRITON / "dinov2")
    assert copied.parameters["weights"].string_value == "/models/tiny"
    assert copied.parameters["torch_threads"].string_value == "1"
    del copied.parameters["weights"], copied.parameters["torch_threads"]
    del original.parameters["weights"]
    assert copied == original
    assert (target / "1" / "model.py").is_file()


def test_tensor_preprocessing_equals_the_models_own_processor(embedding_cache: Path) -> None:
    import torch

    from moviola.embed.encoders import _pixel_values, load_encoder

    pixels = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    for name, kind in (("tiny-dinov2", "dinov2"), ("tiny-siglip2", "siglip")):
        encoder = load_encoder(kind, str(embedding_cache / name), "cpu")
        processor = encoder.processor  # type: ignore[attr-defined]
        reference = processor(images=list(pixels), do_resize=False, do_center_crop=False, return_tensors="pt")
        ours = _pixel_values(processor, pixels, torch.device("cpu"))
        assert torch.allclose(ours, reference["pixel_values"], atol=1e-5), name
