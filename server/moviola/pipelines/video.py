"""Every catalogue model through diffusers: Wan2.1, Wan2.2 (T2V and I2V MoE, TI2V-5B) and LTX-Video.

One class drives them all; what differs between families is how the prompt is
encoded ahead of denoising (so that the phases are timed apart) and a few
call arguments. Foreign errors (torch out-of-memory) are translated here.
"""

from __future__ import annotations

import io
import logging
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moviola.adapters import AdapterCatalog
from moviola.catalog import MemoryPlan, ModelSpec
from moviola.errors import InvalidInput, JobCancelled, OutOfMemory, PipelineFailed
from moviola.jobs import Expert, JobRequest, LoraChoice, Phase
from moviola.pipelines import batch, compiled, edits, memory, placement, speed
from moviola.pipelines.base import Frames, StepHooks
from moviola.pipelines.lora import AdapterBank
from moviola.pipelines.preview import Previewer

log = logging.getLogger(__name__)


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _peak_memory(device: str) -> int:
    """Peak accelerator memory of this job, or the process's peak resident memory on the CPU."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class DiffusersVideo:
    """A loaded diffusers video pipeline, plus its image-to-video and video-to-video (edit) twins when the
    model has them."""

    def __init__(
        self, spec: ModelSpec, pipe: Any, image_pipe: Any, device: str, video_pipe: Any = None
    ) -> None:
        self._spec = spec
        self._pipe = pipe
        self._image_pipe = image_pipe
        #: The video-to-video twin (``ModelSpec.video_pipeline_class``) that edits; None: the model cannot.
        self._video_pipe = video_pipe
        self._device = device
        self._previewer = Previewer(pipe)  # the image-to-video twin shares the VAE
        self._steps = speed.StepCounter(pipe)  # ... and the transformers
        self.memory_plan = MemoryPlan("resident")
        self.turns: memory.TakingTurns | None = None
        #: The LoRA adapters this model may run (the turbo profile's among them); None: it takes none.
        self.adapter_bank: AdapterBank | None = None
        #: How the transformers' weights are stored (``catalog.QUANTIZATIONS``).
        self.quantization = "none"
        boundary = getattr(pipe.config, "boundary_ratio", None)
        self._boundary_timestep = (
            None if boundary is None else boundary * pipe.scheduler.config.num_train_timesteps
        )

    @classmethod
    def load(
        cls,
        spec: ModelSpec,
        source: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        attention_backend: str | None = None,
        memory_plan: str = "auto",
        compile_cache: Path | None = None,
        quantization: str = "auto",
        adapters: AdapterCatalog | None = None,
        adapter_options: dict[str, Any] | None = None,
    ) -> DiffusersVideo:
        """Load with ``from_pretrained`` from a local folder or a hub id, exactly as users would; quantize the
        transformers and place the model on the card by its memory plan; check the adapters registered for it;
        with ``compile_cache``, compile and warm up before returning.

        ``adapter_options``: ``AdapterBank``'s ``cache_dir``, ``s3_endpoint``, ``capacity`` and ``fuse``. Raises
        ``FailedPrecondition`` when no plan fits the card, the quantization or the attention backend cannot
        run, or an adapter file is unusable.
        """
        import diffusers

        device = pick_device(spec.device if device == "auto" else device)
        dtype = spec.dtype if dtype == "auto" else dtype
        options = adapter_options or {}
        plan = placement.plan(spec, device, memory_plan, quantization, fuse=bool(options.get("fuse")))
        pipe = getattr(diffusers, spec.pipeline_class).from_pretrained(source, dtype=_dtype(dtype, device))
        turns = placement.place(pipe, plan, device)
        expected = (
            f"expected peak {plan.peak_gib:g} GiB" if plan.peak_gib else "no expected peak in the catalogue"
        )
        log.info(
            "model %s: plan %s, weights %s, on %s (%s)", spec.id, plan.name, plan.quantize, device, expected
        )
        if attention_backend:
            speed.attention_backend(pipe, attention_backend)
        if spec.memory.vae_slicing:
            pipe.vae.enable_slicing()
        image_pipe = video_pipe = None
        if spec.image_pipeline_class:
            image_pipe = getattr(diffusers, spec.image_pipeline_class).from_pipe(pipe)
        if spec.video_pipeline_class:
            video_pipe = edits.twin(spec.video_pipeline_class, pipe)
        for p in (pipe, image_pipe, video_pipe):
            if p is not None:
                p.set_progress_bar_config(disable=True)
        if compile_cache is not None:  # before the step counter wraps the blocks (speed.StepCounter)
            compiled.compile_transformers(speed.transformers(pipe), compile_cache)
        video = cls(spec, pipe, image_pipe, device, video_pipe)
        video.memory_plan, video.turns, video.quantization = plan, turns, plan.quantize
        if adapters is not None:
            video.adapter_bank = AdapterBank(pipe, spec, adapters, turns=turns, **options)
            video.adapter_bank.check()
        if compile_cache is not None:
            compiled.timed(f"model {spec.id}: compiled and warmed up", video.warm_up)
        return video

    def warm_up(self) -> None:
        """Run the model once per speed profile at its default size (a few steps, no VAE decode), so that
        compiling happens now; on a MoE model both experts run."""
        steps = compiled.warm_up_steps(self._pipe.scheduler, self._boundary_timestep)
        for profile in self.profiles():
            request = compiled.default_request(self._spec, num_inference_steps=steps, speed_profile=profile)
            prompt = self._encode(self._pipe, request)
            self._adapt(request)
            with speed.profile(self._pipe, profile, self._spec):
                self._call(self._pipe, request, prompt, steps, lambda *_: {}, decode=False)
        self._adapt(compiled.default_request(self._spec))

    def profiles(self) -> list[str]:
        """The speed profiles this model runs."""
        fast = ["fast"] if self._spec.fast_threshold > 0 else []
        turbo = ["turbo"] if self._spec.turbo is not None and self.adapter_bank is not None else []
        return ["exact", *fast, *turbo]

    def adapters_of(self, request: JobRequest) -> tuple[LoraChoice, ...]:
        """The adapters a request runs with: the turbo profile's, then the ones it names."""
        turbo = self._spec.turbo
        own = (LoraChoice(turbo.adapter),) if request.speed_profile == "turbo" and turbo is not None else ()
        return own + request.loras

    def _adapt(self, request: JobRequest) -> None:
        """Give the transformers the request's adapters (and only those)."""
        choices = self.adapters_of(request)
        if self.adapter_bank is None:
            if choices:
                raise InvalidInput(f"model {self._spec.id} takes no LoRA adapters on this worker")
            return
        self.adapter_bank.activate(choices)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    def _expert(self, timestep: float) -> Expert:
        if self._boundary_timestep is None:
            return Expert.SINGLE
        return Expert.HIGH_NOISE if timestep >= self._boundary_timestep else Expert.LOW_NOISE

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        return self._run(request, [hooks], lambda: self._generate(request, hooks))

    def edit(self, request: JobRequest, hooks: StepHooks, video: Frames) -> Frames:
        """``video`` made again from the request's prompt, ``request.strength`` of the way from it."""
        if self._video_pipe is None:
            raise InvalidInput(f"model {self._spec.id} cannot edit videos")
        return self._run(request, [hooks], lambda: self._edit(request, hooks, video))

    def batchable(self, request: JobRequest) -> bool:
        """Whether ``request`` may run in one batch with others of its ``batch_key``."""
        return batch.batchable(self._pipe, request)

    def generate_batch(self, requests: list[JobRequest], hooks: list[StepHooks]) -> list[Frames | None]:
        """Run requests of one ``batch_key`` as one batch: each member's frames, or None for one that left
        (its hooks raised ``JobCancelled``, which ends only that member)."""
        return self._run(requests[0], hooks, lambda: self._generate_batch(requests, hooks))

    def _run(self, request: JobRequest, hooks: list[StepHooks], run: Any) -> Any:
        if self._device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        try:
            result = run()
        except (JobCancelled, InvalidInput):
            raise
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(
                f"out of memory at {request.width}x{request.height}, {request.num_frames} frames: "
                "try a smaller size or fewer frames"
            ) from exc
        except (RuntimeError, ValueError) as exc:
            raise PipelineFailed(f"{type(exc).__name__}: {exc}") from exc
        for member in hooks:
            member.peak_memory(_peak_memory(self._device))
        return result

    def _encode(self, pipe: Any, request: JobRequest) -> dict[str, Any]:
        """Encode the prompt ahead of the call, as the call arguments that carry it."""
        if type(pipe).__name__.startswith("Hunyuan"):  # guidance-distilled: no negative prompt
            with torch.inference_mode():
                pe, pooled, mask = pipe.encode_prompt(prompt=request.prompt, device=pipe._execution_device)
            return {"prompt_embeds": pe, "pooled_prompt_embeds": pooled, "prompt_attention_mask": mask}
        cfg = request.guidance_scale > 1.0
        with torch.inference_mode():
            encoded = pipe.encode_prompt(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                do_classifier_free_guidance=cfg,
                device=pipe._execution_device,
            )
        if len(encoded) == 4:  # LTX: embeddings and attention masks
            pe, mask, npe, nmask = encoded
            return {
                "prompt_embeds": pe,
                "prompt_attention_mask": mask,
                "negative_prompt_embeds": npe,
                "negative_prompt_attention_mask": nmask,
            }
        pe, npe = encoded
        return {"prompt_embeds": pe, "negative_prompt_embeds": npe}

    def _call_options(self, pipe: Any, request: JobRequest) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.image is not None:
            from PIL import Image

            options["image"] = Image.open(io.BytesIO(request.image)).convert("RGB")
        if self._boundary_timestep is not None:
            options["guidance_scale_2"] = request.guidance_scale_2
        if type(pipe).__name__.startswith("LTX"):
            options["frame_rate"] = request.fps
        return options

    def _on_step_end(self, request: JobRequest, hooks: StepHooks, total: int) -> Any:
        """The step callback of a run of ``total`` steps: progress (and previews) to ``hooks``."""

        def on_step_end(_pipe: Any, i: int, t: torch.Tensor, kwargs: dict[str, Any]) -> dict[str, Any]:
            timestep = float(t.flatten()[0]) if t.ndim else float(t)
            preview = None
            if hooks.wants_preview(i + 1, total):
                preview = self._previewer.render(kwargs["latents"], request)
            passes = self._steps.take()
            hooks.step(i + 1, total, timestep, self._expert(timestep), preview, passes == 0, passes)
            if i + 1 == total:
                hooks.phase(Phase.VAE_DECODING)
            return {}

        return on_step_end

    def _generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        pipe = self._image_pipe if request.image is not None and self._image_pipe is not None else self._pipe
        total = request.num_inference_steps
        on_step_end = self._on_step_end(request, hooks, total)
        hooks.phase(Phase.TEXT_ENCODING)
        prompt = self._encode(pipe, request)
        self._adapt(request)
        hooks.phase(Phase.DENOISING)
        self._steps.reset()
        with speed.profile(pipe, request.speed_profile or "exact", self._spec):
            output = self._call(pipe, request, prompt, total, on_step_end)
        return _frames(output.frames[0])

    def _edit(self, request: JobRequest, hooks: StepHooks, video: Frames) -> Frames:
        pipe = self._video_pipe
        total = int(request.num_inference_steps * request.strength)  # what the pipeline runs of the schedule
        if total < 1:
            raise InvalidInput(
                f"strength {request.strength:g} of {request.num_inference_steps} steps runs no step"
            )
        on_step_end = self._on_step_end(request, hooks, total)
        hooks.phase(Phase.TEXT_ENCODING)
        prompt = self._encode(pipe, request)
        self._adapt(request)
        hooks.phase(Phase.DENOISING)
        self._steps.reset()
        if self._spec.memory.tiles(request.width, request.height):
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        with speed.profile(pipe, request.speed_profile or "exact", self._spec):
            output = pipe(
                prompt=None,
                **prompt,
                **edits.arguments(pipe, request, video),  # the source and strength, in the pipeline's words
                height=request.height,
                width=request.width,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(request.seed),
                output_type="np",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=["latents"],
            )
        return _frames(output.frames[0])

    def _generate_batch(self, requests: list[JobRequest], hooks: list[StepHooks]) -> list[Frames | None]:
        pipe, first, total = self._pipe, requests[0], requests[0].num_inference_steps
        members = batch.Members(hooks)

        def on_step_end(_pipe: Any, i: int, t: torch.Tensor, kwargs: dict[str, Any]) -> dict[str, Any]:
            timestep = float(t.flatten()[0]) if t.ndim else float(t)
            passes, expert, before = self._steps.take(), self._expert(timestep), list(members.alive)

            def step(member: StepHooks, m: int, row: int) -> None:
                preview = None
                if member.wants_preview(i + 1, total):
                    preview = self._previewer.render(kwargs["latents"][row : row + 1], requests[m])
                member.step(i + 1, total, timestep, expert, preview, passes == 0, passes)
                if i + 1 == total:
                    member.phase(Phase.VAE_DECODING)

            members.each(step)
            return members.after_step(kwargs, _pipe.scheduler, before)

        members.each(lambda member, _m, _row: member.phase(Phase.TEXT_ENCODING))
        prompts = {m: self._encode(pipe, requests[m]) for m in members.alive}
        self._adapt(first)  # one batch key: one adapter set
        members.each(lambda member, _m, _row: member.phase(Phase.DENOISING))
        results: list[Frames | None] = [None] * len(requests)
        if not members.alive:
            return results
        self._steps.reset()
        generators = [torch.Generator("cpu").manual_seed(requests[m].seed) for m in members.alive]
        stacked = batch.stack([prompts[m] for m in members.alive])
        try:
            with speed.profile(pipe, first.speed_profile or "exact", self._spec):
                output = self._call(pipe, first, stacked, total, on_step_end, generators, batch.TENSOR_INPUTS)
        except batch.Abandoned:
            return results
        for m, video in zip(members.alive, output.frames, strict=True):
            results[m] = _frames(video)
        return results

    def _call(
        self,
        pipe: Any,
        request: JobRequest,
        prompt: dict[str, Any],
        total: int,
        on_step_end: Any,
        generator: list[torch.Generator] | None = None,
        tensor_inputs: list[str] | None = None,
        decode: bool = True,
    ) -> Any:
        if decode and self._spec.memory.tiles(request.width, request.height):
            pipe.vae.enable_tiling()
        elif decode:
            pipe.vae.disable_tiling()
        return pipe(
            prompt=None,  # encoded above (some pipelines, SkyReels-V2 among them, want it named anyway)
            **prompt,
            **self._call_options(pipe, request),
            height=request.height,
            width=request.width,
            num_frames=request.num_frames,
            num_inference_steps=total,
            guidance_scale=request.guidance_scale,
            generator=generator or torch.Generator("cpu").manual_seed(request.seed),
            output_type="np" if decode else "latent",
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=tensor_inputs or ["latents"],
        )


def _frames(video: Any) -> Frames:
    """A pipeline's video (frames, height, width, 3) of floats in 0..1, as bytes."""
    return np.asarray(np.clip(video * 255.0 + 0.5, 0, 255), dtype=np.uint8)
