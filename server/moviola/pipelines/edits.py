"""How each video-to-video pipeline (catalogue ``video_pipeline``) is built and takes an edit.

``strength`` means the same on every model (``moviola.editing``): the source video is encoded, noised
to the point of the model's own schedule ``int(steps * strength)`` steps before its end, and those
steps run. The pipelines take that in different words:

- ``WanVideoToVideoPipeline``: the frames as ``video`` and ``strength``; it encodes and noises them.
- ``LTXConditionPipeline``: the source's latents (encoded here as the pipeline normalizes its own) as
  ``latents``, and ``denoise_strength``, which cuts its schedule the same way. Not a conditioning
  video (``conditions``, ``video=``): conditioned frames are held at their conditioning strength and
  only join denoising below that noise level, so the full schedule runs and a strength of 1 gives the
  source back; it is made to extend or fill in around fixed frames, not to remake them.

LTX's schedule stays near pure noise for its first half (``linear_quadratic_schedule``): at 50 steps,
strength 0.2 starts from noise level 0.62 there (0.43 on Wan2.1) and 0.5 from 0.975 (0.75), so on LTX
an edit that keeps the source's look wants a lower strength (``docs/api.md``, edits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from moviola.errors import FailedPrecondition, InvalidInput
from moviola.frames import Frames
from moviola.jobs import JobRequest


def twin(class_name: str, pipe: Any) -> Any:
    """The video-to-video pipeline ``class_name`` sharing ``pipe``'s components.

    ``LTXConditionPipeline`` sets its own schedule and passes the scheduler no ``mu``; LTX-Video 0.9.0
    and 0.9.1 ship a scheduler with dynamic shifting, which needs one. The twin then gets a copy
    without it (as 0.9.5 and later ship theirs), leaving the text-to-video pipeline's untouched.
    """
    import diffusers

    if class_name not in _ARGUMENTS:
        known = ", ".join(_ARGUMENTS)
        raise FailedPrecondition(
            f"video_pipeline {class_name} is not one Moviola can call (it knows {known})"
        )
    cls = getattr(diffusers, class_name)
    config = pipe.scheduler.config
    if class_name == "LTXConditionPipeline" and config.get("use_dynamic_shifting"):
        scheduler = type(pipe.scheduler).from_config(config, use_dynamic_shifting=False, shift_terminal=None)
        return cls.from_pipe(pipe, scheduler=scheduler)
    return cls.from_pipe(pipe)


def arguments(pipe: Any, request: JobRequest, video: Frames) -> dict[str, Any]:
    """The call arguments that carry ``video`` and ``request.strength`` to ``pipe``."""
    return _ARGUMENTS[type(pipe).__name__](pipe, request, video)


def _images(video: Frames) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(frame) for frame in video]


def _wan(_pipe: Any, request: JobRequest, video: Frames) -> dict[str, Any]:
    return {"video": _images(video), "strength": request.strength}


def _ltx(pipe: Any, request: JobRequest, video: Frames) -> dict[str, Any]:
    ratio = pipe.vae_temporal_compression_ratio
    if (len(video) - 1) % ratio:
        raise InvalidInput(f"an LTX-Video edit takes {ratio}k+1 frames, not {len(video)}")
    return {
        "latents": _ltx_latents(pipe, video, request.height, request.width),
        "denoise_strength": request.strength,
        "num_frames": len(video),
        "frame_rate": request.fps,
    }


@torch.inference_mode()
def _ltx_latents(pipe: Any, video: Frames, height: int, width: int) -> torch.Tensor:
    """``video`` in LTX's denoising space: VAE-encoded (the distribution's mode) and normalized, (1, C, F, H, W)."""
    vae = pipe.vae
    pixels = pipe.video_processor.preprocess_video(_images(video), height, width)
    encoded = vae.encode(pixels.to(pipe._execution_device, dtype=vae.dtype)).latent_dist.mode()
    return pipe._normalize_latents(encoded, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)


_ARGUMENTS: dict[str, Callable[[Any, JobRequest, Frames], dict[str, Any]]] = {
    "WanVideoToVideoPipeline": _wan,
    "LTXConditionPipeline": _ltx,
}
