"""Speed profiles: ``exact`` (the pipeline's own numerics) and ``fast`` (a step cache).

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
from collections.abc import Iterator
from typing import Any

from moviola.errors import FailedPrecondition

PROFILES = ("exact", "fast")


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

    def step_cached(self) -> bool:
        """Whether no full pass ran since the previous call (or ``reset``)."""
        cached, self._passes = self._passes == 0, 0
        return cached


@contextlib.contextmanager
def profile(pipe: Any, name: str, threshold: float) -> Iterator[None]:
    """Run the block with ``name``'s caches on every transformer of ``pipe``; always off afterwards."""
    if name not in PROFILES:
        raise ValueError(f"unknown speed profile {name!r} (known: {', '.join(PROFILES)})")
    if name == "exact":
        yield
        return
    from diffusers import FirstBlockCacheConfig

    cached = transformers(pipe)
    for transformer in cached:
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
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
