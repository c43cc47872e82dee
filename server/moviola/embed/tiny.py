"""Tiny random-weight embedding models of the real architectures, built on first use.

They make the embedded default work with no weights and let the tests run the
real loading code (``from_pretrained`` on a saved folder) offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from moviola.pipelines.tiny import VOCAB_LIMIT, build_once, tiny_tokenizer

#: Frame side of the tiny models: the real models' 224, so that resizing is exercised as in production.
IMAGE_SIZE = 224


#: The tiny DINOv2's shape, and DINOv2 ViT-S/14's (``facebook/dinov2-small``): random weights of the
#: real size compute as much as the real model, for benchmarks.
DINOV2_TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "mlp_ratio": 2,
    "patch_size": 14,
}
DINOV2_SMALL = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "mlp_ratio": 4,
    "patch_size": 14,
}


def build_tiny_dinov2(target: Path, *, seed: int = 0, shape: Mapping[str, Any] = DINOV2_TINY) -> None:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    Dinov2Model(Dinov2Config(**shape)).save_pretrained(target)
    # The real checkpoints' processor: resize the shortest edge to 256, centre-crop 224, ImageNet statistics.
    BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(target)


def build_tiny_siglip2(target: Path, *, seed: int = 0) -> None:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": VOCAB_LIMIT,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 1,
            "projection_size": 32,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
        },
    )
    SiglipModel(config).save_pretrained(target)
    tiny_tokenizer().save_pretrained(target)  # type: ignore[attr-defined]
    SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(target)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny-dinov2": build_tiny_dinov2,
    "tiny-siglip2": build_tiny_siglip2,
}


def ensure_built(cache_dir: Path, name: str) -> Path:
    """Return the folder of tiny model ``name``, building it (atomically) on first use."""
    return build_once(cache_dir / name, "config.json", BUILDERS[name])
