"""Live previews: a small JPEG of the current latents, from a linear latent-to-RGB projection.

A video VAE's decoder is far too slow to run at every step, but a latent pixel is close to a linear
function of the colour it stands for. ``Previewer`` fits that function (a ``C x 3`` matrix and a bias)
from the model's own VAE the first time a job asks for previews: it encodes a batch of flat colour
frames, folds in the pipeline's latent normalization (Wan's ``latents_mean``/``latents_std``, LTX's
scaling, Hunyuan's ``scaling_factor``), and solves a small ridge regression. Rendering is then one
matrix product over one latent frame, a resize and a JPEG encode: milliseconds, on the GPU's side
only the product (``bench/preview.py`` measures it). No projection factors are copied from
elsewhere: each model's are fitted from its own weights, so a fine-tuned VAE gets its own.

The preview shows the middle latent frame; its long side is ``min(256, video long side)`` pixels and
it keeps the video's aspect ratio (``preview_size``).
"""

from __future__ import annotations

import io
import threading
from typing import Any

import torch

from moviola.jobs import JobRequest, Preview

#: Longest side of a preview, in pixels.
PREVIEW_LONG_SIDE = 256
JPEG_QUALITY = 80
#: Flat colours encoded to fit the projection (more than any catalogue VAE's latent channels).
FIT_COLOURS = 192
_RIDGE = 1e-3


def preview_size(width: int, height: int) -> tuple[int, int]:
    """The preview's (width, height): the video's aspect, long side ``min(256, max(width, height))``."""
    long_side = max(width, height)
    scale = min(PREVIEW_LONG_SIDE, long_side) / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _denormalization(pipe: Any, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) taking the pipeline's denoising-space latents to the VAE's: ``z = s*x + t``."""
    vae = pipe.vae
    config = vae.config
    ones, zeros = torch.ones(channels), torch.zeros(channels)
    if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
        return torch.tensor(config.latents_std, dtype=torch.float32), torch.tensor(
            config.latents_mean, dtype=torch.float32
        )  # Wan, SkyReels-V2: x = (z - mean) / std
    if hasattr(vae, "latents_mean") and hasattr(vae, "latents_std"):  # LTX: x = (z - mean) * sf / std
        factor = float(getattr(config, "scaling_factor", 1.0))
        return vae.latents_std.float().cpu() / factor, vae.latents_mean.float().cpu()
    factor = float(getattr(config, "scaling_factor", 1.0) or 1.0)
    return ones / factor, zeros  # Hunyuan: x = z * sf


def _spatial_ratio(pipe: Any) -> int:
    for name in ("vae_scale_factor_spatial", "vae_spatial_compression_ratio"):
        value = getattr(pipe, name, None)
        if value:
            return int(value)
    return 8


class Previewer:
    """Renders previews for one pipeline; fitted lazily, once, on the first job that wants previews."""

    def __init__(self, pipe: Any, *, seed: int = 0) -> None:
        self._pipe = pipe
        self._seed = seed
        self._lock = threading.Lock()
        self._projection: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def fitted(self) -> bool:
        return self._projection is not None

    def projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights ``C x 3``, bias ``3``) from denoising-space latents to RGB in [-1, 1]; fitted on first use."""
        with self._lock:
            if self._projection is None:
                self._projection = self._fit()
            return self._projection

    @torch.inference_mode()
    def _fit(self) -> tuple[torch.Tensor, torch.Tensor]:
        vae = self._pipe.vae
        parameter = next(vae.parameters())
        side = 2 * _spatial_ratio(self._pipe)
        generator = torch.Generator().manual_seed(self._seed)
        corners = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
        colours = torch.cat([corners, torch.rand(FIT_COLOURS - len(corners), 3, generator=generator)]) * 2 - 1
        frames = colours.view(-1, 3, 1, 1, 1).expand(-1, 3, 1, side, side)
        latents = []
        for chunk in frames.split(32):
            encoded = vae.encode(chunk.to(parameter.device, parameter.dtype)).latent_dist.mode()
            latents.append(encoded.float().mean(dim=(2, 3, 4)).cpu())
        z = torch.cat(latents)  # (colours, C) in the VAE's latent space
        channels = z.shape[1]
        scale, shift = _denormalization(self._pipe, channels)
        x = (z - shift) / scale  # the same colours as the denoiser sees them
        design = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()
        gram = design.T @ design + _RIDGE * torch.eye(channels + 1, dtype=torch.float64)
        solution = torch.linalg.solve(gram, design.T @ colours.double()).float()
        return solution[:channels], solution[channels]

    def _frame(self, latents: torch.Tensor, request: JobRequest) -> torch.Tensor:
        """The middle latent frame of the first video, as (C, h, w)."""
        if latents.ndim == 3:  # LTX packs latents as (batch, tokens, channels)
            ratio = _spatial_ratio(self._pipe)
            t_ratio = int(getattr(self._pipe, "vae_temporal_compression_ratio", 8))
            frames = (request.num_frames - 1) // t_ratio + 1
            latents = self._pipe._unpack_latents(
                latents,
                frames,
                request.height // ratio,
                request.width // ratio,
                getattr(self._pipe, "transformer_spatial_patch_size", 1),
                getattr(self._pipe, "transformer_temporal_patch_size", 1),
            )
        return latents[0, :, latents.shape[2] // 2]

    @torch.inference_mode()
    def render(self, latents: torch.Tensor, request: JobRequest) -> Preview:
        """The preview of ``latents`` (the pipeline's, mid-denoising) as a JPEG of ``preview_size``."""
        from PIL import Image

        weights, bias = self.projection()
        frame = self._frame(latents, request).float()
        rgb = torch.einsum("chw,ck->hwk", frame, weights.to(frame.device)) + bias.to(frame.device)
        pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
        width, height = preview_size(request.width, request.height)
        image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return Preview(image=buffer.getvalue(), width=width, height=height, mime_type="image/jpeg")
