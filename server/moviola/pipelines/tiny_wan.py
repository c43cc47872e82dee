"""A tiny random-weight Wan2.2-T2V-A14B: the real architecture at toy size.

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
from pathlib import Path

# Hundreds of SentencePiece-style pieces are enough for any prompt: unknown
# words fall back to single characters.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
_SPECIAL = ["<pad>", "</s>", "<unk>"]
TEXT_DIM = 32
VOCAB_LIMIT = 1000


def _tokenizer() -> object:
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


def build_tiny_wan22_t2v(target: Path, *, seed: int = 0) -> None:
    """Build the tiny pipeline and ``save_pretrained`` it into ``target``."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)  # once, before both experts: they must differ
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=VOCAB_LIMIT,
            d_model=TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )

    def expert() -> WanTransformer3DModel:
        return WanTransformer3DModel(
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

    pipe = WanPipeline(
        tokenizer=_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
        ),
        transformer=expert(),
        transformer_2=expert(),
        boundary_ratio=0.875,
    )
    pipe.save_pretrained(str(target))  # type: ignore[attr-defined]


def ensure_built(cache_dir: Path, name: str = "tiny-wan2.2-t2v") -> Path:
    """Return the folder of the tiny pipeline, building it on first use.

    Building goes to a temporary folder that is renamed into place, so a
    concurrent builder or an interrupted build never leaves a half-written model.
    """
    target = cache_dir / name
    if (target / "model_index.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
    try:
        build_tiny_wan22_t2v(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model_index.json").exists():
                raise  # not a lost race with another builder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
