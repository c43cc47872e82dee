"""Compiled workers (``--compile``): the transformers' repeated blocks through ``torch.compile``, at load.

Only the repeated blocks are compiled (as diffusers' ``compile_repeated_blocks``: Wan's 30-40
identical blocks share one graph), which takes seconds where compiling the whole transformer takes
minutes. Compiling is
lazy, so ``warm_up`` runs the model once per speed profile at its default size, before the worker
says it is ready: the first job does not pay for it. Inductor's caches (FX graph, AOT autograd,
autotuning) live in ``cache_dir``, which a pod keeps on a volume, so a restarted worker loads the
compiled kernels instead of compiling again.

``fullgraph`` stays off: the fast profile's cache decides per pass whether to run the later blocks,
which is a graph break, and the step counter runs eagerly on purpose (``speed.StepCounter``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from moviola.catalog import ModelSpec
from moviola.jobs import JobRequest

log = logging.getLogger(__name__)


def default_request(spec: ModelSpec, **changes: Any) -> JobRequest:
    """A text-to-video request with ``spec``'s defaults (what validation makes of a bare prompt)."""
    d = spec.defaults
    fields: dict[str, Any] = {
        "model": spec.id,
        "prompt": "a fox",
        "negative_prompt": "",
        "image": None,
        "width": d.width,
        "height": d.height,
        "num_frames": d.num_frames,
        "fps": d.fps,
        "num_inference_steps": d.num_inference_steps,
        "guidance_scale": d.guidance_scale,
        "guidance_scale_2": d.guidance_scale_2,
        "seed": 1,
    }
    return JobRequest(**(fields | changes))


def use_cache_dir(cache_dir: Path) -> None:
    """Keep Inductor's compiled artifacts in ``cache_dir`` (read by Inductor at each compile)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = True


def compile_transformers(transformers: list[Any], cache_dir: Path) -> None:
    """Compile the ``forward`` of every repeated block (the classes a diffusers model lists in
    ``_repeated_blocks``): the blocks share one compiled graph.

    This is ``compile_repeated_blocks`` one level in: that compiles each block's whole call, hooks
    included, so the fast profile's cache hooks (one state per CFG branch) are traced into the graph
    and recompile it for every branch until dynamo's limit. Compiling ``forward`` leaves the hooks to
    run eagerly around the compiled block.
    """
    import torch

    use_cache_dir(cache_dir)
    for transformer in transformers:
        names = set(getattr(transformer, "_repeated_blocks", None) or ())
        blocks = [m for m in transformer.modules() if type(m).__name__ in names]
        if not blocks:
            raise ValueError(f"{type(transformer).__name__} names no repeated blocks to compile")
        for block in blocks:
            block.forward = torch.compile(block.forward)


def warm_up_steps(scheduler: Any, boundary_timestep: float | None) -> int:
    """The fewest steps (at least 2) whose timesteps reach both sides of the MoE boundary, if any."""
    for steps in range(2, 21):
        scheduler.set_timesteps(steps)
        if boundary_timestep is None or float(scheduler.timesteps.min()) < boundary_timestep:
            return steps
    return 20


def timed(what: str, run: Any) -> None:
    started = time.monotonic()
    run()
    log.info("%s in %.1fs", what, time.monotonic() - started)
