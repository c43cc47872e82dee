"""The published configurations of the real Wan models, to build them at full size with random weights.

For ``bench/gpu.py`` (seconds per step and peak memory at real size, with nothing downloaded) and for
the catalogue's memory plans (the weights each plan keeps on the card, counted exactly). The numbers
are those of the models' ``config.json`` files (Wan-AI's Diffusers repositories; the same as the
Wan team's own ``wan/configs``).
"""

from __future__ import annotations

from typing import Any

import torch

_WAN = {
    "patch_size": (1, 2, 2),
    "attention_head_dim": 128,
    "text_dim": 4096,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}

#: Wan transformers by name: (config, VAE spatial and temporal compression).
WAN_TRANSFORMERS: dict[str, tuple[dict[str, Any], int, int]] = {
    "wan2.1-t2v-1.3b": (
        _WAN
        | {
            "num_attention_heads": 12,
            "in_channels": 16,
            "out_channels": 16,
            "ffn_dim": 8960,
            "num_layers": 30,
        },
        8,
        4,
    ),
    "wan2.2-ti2v-5b": (
        _WAN
        | {
            "num_attention_heads": 24,
            "in_channels": 48,
            "out_channels": 48,
            "ffn_dim": 14336,
            "num_layers": 30,
        },
        16,
        4,
    ),
    "wan2.2-a14b-expert": (
        _WAN
        | {
            "num_attention_heads": 40,
            "in_channels": 16,
            "out_channels": 16,
            "ffn_dim": 13824,
            "num_layers": 40,
        },
        8,
        4,
    ),
}

#: UMT5-XXL's encoder: every Wan model's text encoder.
UMT5_XXL: dict[str, Any] = {
    "d_model": 4096,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "d_kv": 64,
    "vocab_size": 256384,
    "feed_forward_proj": "gated-gelu",
}


def wan_transformer(
    name: str, *, device: str = "meta", dtype: torch.dtype = torch.bfloat16, **changes: Any
) -> Any:
    """Wan transformer ``name`` (``changes`` override its config), built on ``device`` in ``dtype`` with
    diffusers' own initialisation (random weights; on ``meta``, shapes only)."""
    from diffusers import WanTransformer3DModel

    config = WAN_TRANSFORMERS[name][0] | changes
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model: Any = WanTransformer3DModel(**config)
    finally:
        torch.set_default_dtype(default)
    model.requires_grad_(False)
    return model


def umt5_xxl() -> Any:
    """UMT5-XXL's encoder on the meta device (its shape, no weights)."""
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        return UMT5EncoderModel(UMT5Config(**UMT5_XXL))


def gib(model: Any, bytes_per_parameter: int = 2) -> float:
    """The model's weights in GiB (bf16 by default)."""
    return sum(p.numel() for p in model.parameters()) * bytes_per_parameter / 2**30
