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


#: The Qwen-VL tokenizers' special tokens the embedding prompts use, then printable ASCII, one token each.
_QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_tokenizer() -> Any:
    """A character-level tokenizer with the Qwen-VL special tokens, saved as ``tokenizer.json``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*_QWEN_SPECIAL, *map(chr, range(32, 127))])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer.add_special_tokens(_QWEN_SPECIAL)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )


def _qwen_ids(tokenizer: Any) -> dict[str, int]:
    ids = {name: tokenizer.convert_tokens_to_ids(f"<|{name}|>") for name in ("image_pad", "video_pad")}
    ids |= {
        f"{name}_token_id": tokenizer.convert_tokens_to_ids(f"<|{name}|>")
        for name in ("vision_start", "vision_end")
    }
    return {
        "image_token_id": ids["image_pad"],
        "video_token_id": ids["video_pad"],
        "vision_start_token_id": ids["vision_start_token_id"],
        "vision_end_token_id": ids["vision_end_token_id"],
    }


def _qwen_text(tokenizer: Any, **rope: Any) -> dict[str, Any]:
    """Both twins' language model: 2 layers of 32, grouped-query attention, multimodal RoPE."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
            **rope,
        },
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
    }


def build_tiny_qwen3_vl_embedding(target: Path, *, seed: int = 0) -> None:
    """Qwen3-VL-Embedding's architecture (a ``Qwen3VLModel``) with 2 layers of 32, and its image processor."""
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLModel

    tokenizer = _qwen_tokenizer()
    torch.manual_seed(seed)
    config = Qwen3VLConfig(
        text_config={**_qwen_text(tokenizer, mrope_interleaved=True), "head_dim": 16},
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 32,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [1],
        },
    )
    for key, value in _qwen_ids(tokenizer).items():
        setattr(config, key, value)
    Qwen3VLModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    # The real checkpoints' processor: 16-pixel patches merged 2 x 2, CLIP-style 0.5 statistics.
    Qwen2VLImageProcessor(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=32 * 32,
        max_pixels=1024 * 1024,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(target)


def build_tiny_vlm2vec_v2(target: Path, *, seed: int = 0) -> None:
    """VLM2Vec-V2's architecture (a Qwen2-VL ``ForConditionalGeneration``) with 2 layers of 32."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor

    tokenizer = _qwen_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        text_config=_qwen_text(tokenizer),
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    )
    for key, value in _qwen_ids(tokenizer).items():
        setattr(config, key, value)
    Qwen2VLForConditionalGeneration(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    Qwen2VLImageProcessor(
        patch_size=14, merge_size=2, min_pixels=28 * 28, max_pixels=1024 * 1024
    ).save_pretrained(target)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny-dinov2": build_tiny_dinov2,
    "tiny-siglip2": build_tiny_siglip2,
    "tiny-qwen3-vl-embedding": build_tiny_qwen3_vl_embedding,
    "tiny-vlm2vec-v2": build_tiny_vlm2vec_v2,
}


def ensure_built(cache_dir: Path, name: str) -> Path:
    """Return the folder of tiny model ``name``, building it (atomically) on first use."""
    return build_once(cache_dir / name, "config.json", BUILDERS[name])
