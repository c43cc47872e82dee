"""Wan text-to-video through diffusers' ``WanPipeline`` (Wan2.1, Wan2.2 MoE)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from moviola.catalog import ModelSpec
from moviola.errors import JobCancelled, OutOfMemory, PipelineFailed
from moviola.jobs import Expert, JobRequest, Phase
from moviola.pipelines.base import Frames, StepHooks


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class WanTextToVideo:
    """A loaded ``WanPipeline``; with ``transformer_2`` and ``boundary_ratio`` it is Wan2.2's MoE."""

    def __init__(self, spec: ModelSpec, pipe: Any, device: str) -> None:
        self._spec = spec
        self._pipe = pipe
        self._device = device
        boundary = pipe.config.boundary_ratio
        self._boundary_timestep = (
            None if boundary is None else boundary * pipe.scheduler.config.num_train_timesteps
        )

    @classmethod
    def load(
        cls, spec: ModelSpec, source: str, *, device: str = "auto", dtype: str = "auto"
    ) -> WanTextToVideo:
        """Load with ``from_pretrained`` from a local folder or a hub id, exactly as users would."""
        from diffusers import WanPipeline

        device = pick_device(device)
        pipe = WanPipeline.from_pretrained(source, dtype=_dtype(dtype, device))
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device)
        return cls(spec, pipe, device)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def _expert(self, timestep: float) -> Expert:
        if self._boundary_timestep is None:
            return Expert.SINGLE
        return Expert.HIGH_NOISE if timestep >= self._boundary_timestep else Expert.LOW_NOISE

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        try:
            return self._generate(request, hooks)
        except JobCancelled:
            raise
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(
                f"out of memory at {request.width}x{request.height}, {request.num_frames} frames: "
                "try a smaller size or fewer frames"
            ) from exc
        except (RuntimeError, ValueError) as exc:
            raise PipelineFailed(f"{type(exc).__name__}: {exc}") from exc

    def _generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        pipe = self._pipe
        total = request.num_inference_steps

        def on_step_end(_pipe: Any, i: int, t: torch.Tensor, _kwargs: dict[str, Any]) -> dict[str, Any]:
            timestep = float(t)
            hooks.step(i + 1, total, timestep, self._expert(timestep))
            if i + 1 == total:
                hooks.phase(Phase.VAE_DECODING)
            return {}

        hooks.phase(Phase.TEXT_ENCODING)
        cfg = request.guidance_scale > 1.0
        with torch.inference_mode():
            prompt_embeds, negative_embeds = pipe.encode_prompt(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                do_classifier_free_guidance=cfg,
                device=pipe._execution_device,
            )
        hooks.phase(Phase.DENOISING)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        output = pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds,
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=total,
            guidance_scale=request.guidance_scale,
            guidance_scale_2=request.guidance_scale_2 if self._boundary_timestep is not None else None,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step_end,
        )
        video = output.frames[0]  # (frames, height, width, 3), floats in 0..1
        return np.asarray(np.clip(video * 255.0 + 0.5, 0, 255), dtype=np.uint8)
