"""Speed profiles: ``exact`` (the pipeline's own numerics), ``fast`` (a step cache) and ``turbo``.

``turbo`` runs the model's step-distilled adapter (catalogue ``turbo``; applied by
``moviola.pipelines.lora`` like any adapter) for a few steps without classifier-free guidance, with
the scheduler settings it was distilled with: its flow shift, and flow-matching Euler where its
``sampler`` says so (Wan2.2-Lightning: 4 Euler steps at shift 5, timesteps 1000, 937.5, 833, 625).
Validation has already set its steps and turned guidance off (``moviola.validation``).

``fast`` turns on diffusers' First Block Cache for the job: on each transformer call the first
block runs, and when its output moved less than the model's ``fast_threshold`` (catalogue) since
the last full pass, the later blocks are skipped and their cached residual reused. Wan2.2's two
experts get a cache each. Progress stays truthful: every step is still reported, and a step whose
transformer passes were all served from the cache says ``cached`` (``StepCounter`` counts the
full passes at the last block, which only a full pass reaches).

First Block Cache was chosen over MagCache and TaylorSeer because it needs no per-model
calibration table (MagCache's ratios are measured per model and step count) and works for every
catalogue family through diffusers' one ``enable_cache`` API; its one knob is in the catalogue.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from typing import Any

from moviola.catalog import SPEED_PROFILES, ModelSpec, TurboProfile
from moviola.errors import FailedPrecondition


def transformers(pipe: Any) -> list[Any]:
    return [
        t for t in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if t is not None
    ]


def _last_block(transformer: Any) -> Any:
    for name in ("single_transformer_blocks", "blocks", "transformer_blocks"):
        blocks = getattr(transformer, name, None)
        if blocks is not None and len(blocks):
            return blocks[-1]
    raise ValueError(f"{type(transformer).__name__} has no transformer blocks to cache")


class StepCounter:
    """Full transformer passes since the last step: none means the step cache served the step.

    It wraps the last block's ``forward``, which only a full pass calls: the cache's hooks, registered
    later around it, skip it on a cached pass. Created after compiling (``--compile``), so the count
    runs eagerly around the compiled block rather than being traced into it.
    """

    def __init__(self, pipe: Any) -> None:
        self._passes = 0
        for transformer in transformers(pipe):
            last = _last_block(transformer)
            last.forward = self._counting(last.forward)

    def _counting(self, forward: Any) -> Any:
        @functools.wraps(forward)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._passes += 1
            return forward(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self._passes = 0

    def take(self) -> int:
        """The full passes since the previous call (or ``reset``): 0 when the step cache served the step."""
        passes, self._passes = self._passes, 0
        return passes


def turbo_scheduler(scheduler: Any, turbo: TurboProfile) -> Any:
    """The scheduler a turbo profile was distilled with, made from the pipeline's own configuration."""
    if turbo.sampler == "euler":
        from diffusers import FlowMatchEulerDiscreteScheduler

        shift = turbo.shift if turbo.shift is not None else scheduler.config.get("flow_shift", 1.0)
        known = inspect.signature(FlowMatchEulerDiscreteScheduler.__init__).parameters
        config = {key: value for key, value in scheduler.config.items() if key in known}  # not UniPC's own
        return FlowMatchEulerDiscreteScheduler.from_config(config, shift=shift)
    if turbo.shift is not None:
        return type(scheduler).from_config(scheduler.config, flow_shift=turbo.shift)
    return scheduler


@contextlib.contextmanager
def profile(pipe: Any, name: str, spec: ModelSpec) -> Iterator[None]:
    """Run the block with ``name``'s caches (fast) or scheduler (turbo) on ``pipe``; undone afterwards."""
    if name not in SPEED_PROFILES:
        raise ValueError(f"unknown speed profile {name!r} (known: {', '.join(SPEED_PROFILES)})")
    if name == "exact":
        yield
        return
    if name == "turbo":
        if spec.turbo is None:
            raise ValueError(f"model {spec.id} has no turbo profile")
        original = pipe.scheduler
        pipe.scheduler = turbo_scheduler(original, spec.turbo)
        try:
            yield
        finally:
            pipe.scheduler = original
        return
    from diffusers import FirstBlockCacheConfig

    cached = transformers(pipe)
    for transformer in cached:
        transformer.enable_cache(FirstBlockCacheConfig(threshold=spec.fast_threshold))
    try:
        yield
    finally:
        for transformer in cached:
            transformer.disable_cache()


def attention_backend(pipe: Any, name: str) -> None:
    """Run every transformer's attention on diffusers' backend ``name`` (``native``, ``flash``, ``_flash_3``,
    ``sage``, ...); ``FailedPrecondition`` saying why when it is unknown or its kernel is not installed.

    Checked at load, before the worker says ready, so a missing kernel stops it at once rather than
    failing its first job. Hub kernels (``*_hub``) are refused: they are downloaded at run time.
    """
    if name.endswith("_hub"):
        raise FailedPrecondition(
            f"--attention-backend {name}: hub kernels are downloaded at run time, and Moviola loads nothing "
            "from the network; install the kernel's package and use its plain name (flash, sage, ...)"
        )
    for transformer in transformers(pipe):
        try:
            transformer.set_attention_backend(name)
        except (ValueError, RuntimeError) as exc:
            raise FailedPrecondition(f"--attention-backend {name}: {exc}") from exc
