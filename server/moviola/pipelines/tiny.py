"""Tiny random-weight pipelines: each served architecture at toy size.

No weights can be downloaded where Moviola is tested, and a newcomer should see
the server work before fetching 100 GB of them. This builder makes a pipeline
with the same components as Wan2.2-T2V-A14B (UMT5 text encoder, Wan VAE, two
Wan transformers as high- and low-noise experts, ``boundary_ratio``) and saves
it with ``save_pretrained``, so the server loads it through the very same
``from_pretrained`` path as real weights. Its output is noise.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Hundreds of SentencePiece-style pieces are enough for any prompt: unknown
# words fall back to single characters.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
_SPECIAL = ["<pad>", "</s>", "<unk>"]
TEXT_DIM = 32
VOCAB_LIMIT = 1000


def tiny_tokenizer() -> object:
    """A small T5-style Unigram tokenizer built in code (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]

    pieces = [(tok, 0.0) for tok in _SPECIAL]
    pieces += [(f"▁{c}", -2.0) for c in _ALPHABET] + [(c, -3.0) for c in _ALPHABET] + [("▁", -4.0)]
    common = [
        "a",
        "the",
        "of",
        "and",
        "in",
        "on",
        "with",
        "red",
        "fox",
        "running",
        "through",
        "snow",
        "cat",
        "dog",
        "city",
        "night",
        "sea",
        "sky",
    ]
    pieces += [(f"▁{w}", -1.0) for w in common]
    seen: set[str] = set()
    unique = [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    assert len(unique) < VOCAB_LIMIT
    tok = Tokenizer(models.Unigram(unique, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


#: A two-layer T5 encoder whose width matches the transformers' text inputs.
_T5_SIZE: dict[str, Any] = {
    "vocab_size": VOCAB_LIMIT,
    "d_model": TEXT_DIM,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "pad_token_id": 0,
    "eos_token_id": 1,
}


def _umt5(seed: int) -> object:
    """UMT5, as Wan uses."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch_seed(seed)
    return UMT5EncoderModel(UMT5Config(**_T5_SIZE))


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _wan_vae(channels: int = 16) -> object:
    from diffusers import AutoencoderKLWan

    if channels == 16:
        return AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
    # Wan2.2-TI2V-5B's VAE: 48 latent channels, residual, patchified by 2 (16x spatial compression).
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )


def _wan_transformer(in_channels: int, out_channels: int) -> object:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,  # diffusers' test value (32) fails at real resolutions
    )


def _flow_scheduler() -> object:
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
    )


def _save_wan(
    target: Path, pipeline: str, seed: int, *, latent_channels: int, experts: list[int], **config: Any
) -> None:
    """Build a Wan-family pipeline: UMT5, the Wan VAE, one transformer per expert (input channels given)."""
    import diffusers

    text_encoder = _umt5(seed)
    torch_seed(seed)  # once, before the experts: two experts must differ
    vae = _wan_vae(latent_channels)
    transformers = [_wan_transformer(channels, latent_channels) for channels in experts]
    pipe = getattr(diffusers, pipeline)(
        tokenizer=tiny_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=_flow_scheduler(),
        transformer=transformers[0],
        **({"transformer_2": transformers[1]} if len(transformers) > 1 else {}),
        **config,
    )
    pipe.save_pretrained(str(target))


def build_tiny_wan22_t2v(target: Path, *, seed: int = 0) -> None:
    """Wan2.2-T2V-A14B: two experts (high noise, low noise) switched at ``boundary_ratio``."""
    _save_wan(target, "WanPipeline", seed, latent_channels=16, experts=[16, 16], boundary_ratio=0.875)


def build_tiny_wan22_i2v(target: Path, *, seed: int = 0) -> None:
    """Wan2.2-I2V-A14B: two experts over 36 input channels (noise, mask, image latent); no CLIP encoder."""
    _save_wan(
        target,
        "WanImageToVideoPipeline",
        seed,
        latent_channels=16,
        experts=[36, 36],
        image_processor=None,
        image_encoder=None,
        boundary_ratio=0.9,
    )


def build_tiny_wan22_ti2v(target: Path, *, seed: int = 0) -> None:
    """Wan2.2-TI2V-5B: one transformer on the 48-channel VAE, per-token timesteps (``expand_timesteps``)."""
    _save_wan(target, "WanPipeline", seed, latent_channels=48, experts=[48], expand_timesteps=True)


def build_tiny_wan21_t2v(target: Path, *, seed: int = 0) -> None:
    """Wan2.1-T2V-1.3B: one transformer, the 16-channel VAE."""
    _save_wan(target, "WanPipeline", seed, latent_channels=16, experts=[16])


def build_tiny_ltx_video(target: Path, *, seed: int = 0) -> None:
    """LTX-Video with the real compression (32x spatial, 8x temporal), so that real sizes stay fast."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch_seed(seed)
    text_encoder = T5EncoderModel(T5Config(**_T5_SIZE))  # T5, as LTX-Video uses
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=2,  # a head block and a tail, as a step cache needs
        caption_channels=TEXT_DIM,
    )
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    pipe = LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tiny_tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(str(target))  # type: ignore[attr-defined]


def build_tiny_skyreels_v2_df(target: Path, *, seed: int = 0) -> None:
    """SkyReels-V2 diffusion forcing: a Wan2.1-style transformer denoising frames at staggered noise levels."""
    from diffusers import (
        SkyReelsV2DiffusionForcingPipeline,
        SkyReelsV2Transformer3DModel,
    )

    text_encoder = _umt5(seed)
    torch_seed(seed)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,
    )
    pipe = SkyReelsV2DiffusionForcingPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=text_encoder,
        transformer=transformer,
        vae=_wan_vae(),
        scheduler=_flow_scheduler(),
    )
    pipe.save_pretrained(str(target))  # type: ignore[attr-defined]


def build_tiny_hunyuanvideo(target: Path, *, seed: int = 0) -> None:
    """HunyuanVideo: a Llama text encoder and a CLIP one, a dual-stream transformer, its own 3D VAE.

    The tiny twin keeps those layer types; its tokenizers are this module's small Unigram one.
    """
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    torch_seed(seed)
    common: dict[str, Any] = {
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 0,
        "vocab_size": VOCAB_LIMIT,
        "hidden_act": "gelu",
    }
    llama = LlamaModel(
        LlamaConfig(
            hidden_size=16, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, **common
        )
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=8,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
            max_position_embeddings=77,
            **common,
        )
    )
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
    )
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        act_fn="silu",
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    )
    pipe = HunyuanVideoPipeline(
        text_encoder=llama,
        tokenizer=tiny_tokenizer(),
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=clip,
        tokenizer_2=tiny_tokenizer(),
    )
    pipe.save_pretrained(str(target))  # type: ignore[attr-defined]


BUILDERS = {
    "tiny-wan2.2-t2v": build_tiny_wan22_t2v,
    "tiny-wan2.2-i2v": build_tiny_wan22_i2v,
    "tiny-wan2.2-ti2v": build_tiny_wan22_ti2v,
    "tiny-wan2.1-t2v": build_tiny_wan21_t2v,
    "tiny-ltx-video": build_tiny_ltx_video,
    "tiny-skyreels-v2-df": build_tiny_skyreels_v2_df,
    "tiny-hunyuanvideo": build_tiny_hunyuanvideo,
}


def ensure_built(cache_dir: Path, name: str = "tiny-wan2.2-t2v") -> Path:
    """Return the folder of the tiny pipeline, building it on first use."""
    return build_once(cache_dir / name, "model_index.json", BUILDERS[name])


def build_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Build into ``target`` unless ``target/marker`` exists; return ``target``.

    Building goes to a temporary folder that is renamed into place, so a
    concurrent builder or an interrupted build never leaves a half-written model.
    """
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / marker).exists():
                raise  # not a lost race with another builder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
