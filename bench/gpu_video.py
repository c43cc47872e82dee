"""Seconds per whole video, text encoding to MP4, at real size with random weights (``bench/gpu.py``'s last table).

Wan2.2-T2V-A14B (both experts, UMT5-XXL, the Wan VAE) and Wan2.2-TI2V-5B (its 48-channel VAE) at
832x480 and 81 frames, through the worker's own ``DiffusersVideo`` and MP4 encoder, so the row is what a
job costs: text encoding, denoising, VAE decode, MP4. ``turbo`` applies a random rank-64 adapter in the
Wan2.2-Lightning layout (one file per expert, every attention and FFN linear), for its 4 steps without
guidance; ``turbo+fp8`` does so on fp8 weights (float8 matmuls on 8.9+ cards). ``exact`` would take 40
(A14B) or 50 (TI2V-5B) steps with guidance, minutes a video: it runs 4, and its row adds the other steps
at the measured seconds a step ("from 4 measured"). Nothing is downloaded; the weights are noise.

The TI2V-5B VAE's configuration is the published one as far as it could be checked offline (48 latent
channels, residual, patchified by 2, 16x spatial); its decode time is indicative.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from moviola.adapters import HIGH_NOISE_FILE, LOW_NOISE_FILE, AdapterCatalog, AdapterSpec
from moviola.catalog import BUILTIN_MODELS, TurboProfile
from moviola.mp4 import encode_mp4
from moviola.pipelines import quantize
from moviola.pipelines.compiled import default_request
from moviola.pipelines.lora import AdapterBank
from moviola.pipelines.published import UMT5_XXL, wan_transformer
from moviola.pipelines.tiny import tiny_tokenizer
from moviola.pipelines.tiny_lora import LIGHTNING_TARGETS, random_lora
from moviola.pipelines.video import DiffusersVideo
from moviola.worker.hooks import JobHooks

#: Steps ``exact`` runs for real; the rest of its steps are counted at the measured seconds a step.
MEASURED_STEPS = 4
TI2V_VAE: dict[str, Any] = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}


def _on(device: str, dtype: torch.dtype, build: Any) -> Any:
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return build().requires_grad_(False)
    finally:
        torch.set_default_dtype(default)


#: The smoke run's narrow twins (on the CPU): two layers, two heads, a small vocabulary; real VAEs.
SMOKE_TRANSFORMER = {"num_layers": 2, "num_attention_heads": 2}
SMOKE_UMT5 = {"num_layers": 2, "num_heads": 4, "d_ff": 512, "vocab_size": 1000}


def pipeline(model: str, device: str, dtype: torch.dtype, smoke: bool) -> Any:
    """A real-size Wan pipeline with random weights (smoke: narrow transformers and text encoder)."""
    import diffusers
    from transformers import UMT5Config, UMT5EncoderModel

    library: Any = diffusers  # partly typed: its classes are called as Any here
    AutoencoderKLWan, WanPipeline = library.AutoencoderKLWan, library.WanPipeline
    UniPCMultistepScheduler = library.UniPCMultistepScheduler

    changes = SMOKE_TRANSFORMER if smoke else {}
    umt5 = UMT5_XXL | (SMOKE_UMT5 if smoke else {})
    text_encoder = _on(device, dtype, lambda: UMT5EncoderModel(UMT5Config(**umt5)))
    five = model == "wan2.2-ti2v-5b"
    vae = _on(device, torch.float32, lambda: AutoencoderKLWan(**TI2V_VAE) if five else AutoencoderKLWan())
    name = "wan2.2-ti2v-5b" if five else "wan2.2-a14b-expert"
    experts = [wan_transformer(name, device=device, dtype=dtype, **changes) for _ in range(1 if five else 2)]
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
    )
    extra = {"expand_timesteps": True} if five else {"transformer_2": experts[1], "boundary_ratio": 0.875}
    pipe = WanPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=experts[0],
        **extra,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _random_lightning(pipe: Any, folder: Path, rank: int) -> None:
    """A random adapter in Wan2.2-Lightning's layout: one file per expert, every attention and FFN linear."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for transformer, file in ((pipe.transformer, HIGH_NOISE_FILE), (pipe.transformer_2, LOW_NOISE_FILE)):
        save_file(random_lora(transformer, rank, LIGHTNING_TARGETS), str(folder / file))


def _time(video: DiffusersVideo, request: Any) -> tuple[float, float, int]:
    """Seconds text encoding to MP4, seconds denoising, and transformer passes of one video."""
    hooks = JobHooks(lambda _event: None)
    started = time.perf_counter()
    frames = video.generate(request, hooks)
    encode_mp4(frames, request.fps)
    total = time.perf_counter() - started
    return total, hooks.timings(0.0, total).denoising, hooks.transformer_passes


def rows(
    model: str, device: str, dtype: torch.dtype, smoke: bool
) -> list[tuple[str, str, float, float, int]]:
    """(model, profile, seconds a video, seconds denoising, passes) of each profile of ``model``."""
    spec = BUILTIN_MODELS["wan2.2-t2v-a14b" if model == "wan2.2-t2v-a14b" else "wan2.2-ti2v-5b"]
    width, height, frames = (64, 64, 5) if smoke else (832, 480, 81)
    pipe = pipeline(model, device, dtype, smoke)
    video = DiffusersVideo(spec, pipe, None, device)
    out = []
    steps = spec.defaults.num_inference_steps
    with tempfile.TemporaryDirectory() as scratch:
        turbo_adapter = ""
        if spec.boundary_ratio is not None:
            turbo_adapter = "bench-lightning"
            _random_lightning(pipe, Path(scratch) / turbo_adapter, 4 if smoke else 64)
            adapter = AdapterSpec(
                turbo_adapter,
                str(Path(scratch) / turbo_adapter),
                (spec.id,),
                high_noise=HIGH_NOISE_FILE,
                low_noise=LOW_NOISE_FILE,
                callers=False,
            )
            spec = replace(spec, turbo=TurboProfile(turbo_adapter, shift=5.0, sampler="euler"))
            catalog = AdapterCatalog({turbo_adapter: adapter})
            video = DiffusersVideo(spec, pipe, None, device)
            video.adapter_bank = AdapterBank(pipe, spec, catalog, cache_dir=Path(scratch))
        size = {"width": width, "height": height, "num_frames": frames}
        exact = default_request(spec, **size, num_inference_steps=MEASURED_STEPS)
        total, denoise, passes = _time(video, exact)
        per_step = denoise / MEASURED_STEPS
        out.append(
            (
                model,
                f"exact ({steps} steps, from {MEASURED_STEPS} measured)",
                total + per_step * (steps - MEASURED_STEPS),
                denoise + per_step * (steps - MEASURED_STEPS),
                passes // MEASURED_STEPS * steps,
            )
        )
        if turbo_adapter:
            turbo = default_request(
                spec,
                **size,
                speed_profile="turbo",
                num_inference_steps=4,
                guidance_scale=1.0,
                guidance_scale_2=1.0,
            )
            out.append((model, "turbo", *_time(video, turbo)))
            dynamic = (
                device.startswith("cuda") and torch.cuda.get_device_capability() >= quantize.FP8_CAPABILITY
            )
            pipe.unload_lora_weights()  # quantized first, the adapter then loaded on top, as a worker does
            quantize.quantize(pipe, "fp8-dynamic" if dynamic else "fp8", device)
            video = DiffusersVideo(spec, pipe, None, device)
            video.adapter_bank = AdapterBank(pipe, spec, catalog, cache_dir=Path(scratch))
            out.append((model, f"turbo+{'fp8-dynamic' if dynamic else 'fp8'}", *_time(video, turbo)))
    del video, pipe
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out
