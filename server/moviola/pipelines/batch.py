"""Batched jobs (``--max-batch``): several requests that share a ``JobRequest.batch_key`` in one pipeline call.

Each member keeps its own seed (one generator per member, so its starting noise is the noise it
would get alone), its own prompt embeddings (encoded alone and stacked) and its own hooks. A member
whose hooks raise ``JobCancelled`` leaves the batch at that step: the step callback drops its rows
from the latents and embeddings it hands back to the pipeline, and from the scheduler's saved
latent-shaped state (UniPC keeps its previous model outputs), so the others go on undisturbed.

Only pipelines whose denoising state is all in those tensors batch: Wan's text-to-video pipeline
(Wan2.1, Wan2.2 T2V and TI2V-5B). Image-to-video conditioning and LTX's packed CFG embeddings are
outside the callback's reach, so those jobs run alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from moviola.errors import JobCancelled
from moviola.jobs import JobRequest
from moviola.pipelines.base import StepHooks

#: Pipelines (diffusers class names) whose jobs may run in one batch.
BATCHING_PIPELINES = frozenset({"WanPipeline"})
#: What the step callback may replace (diffusers' ``callback_on_step_end_tensor_inputs``).
TENSOR_INPUTS = ["latents", "prompt_embeds", "negative_prompt_embeds"]


class Abandoned(Exception):
    """Every member of the batch left: the pipeline call stops."""


class Members:
    """The members still in a batch, in batch order (a member's row is its place among them)."""

    def __init__(self, hooks: list[StepHooks]) -> None:
        self.hooks = hooks
        self.alive = list(range(len(hooks)))

    def each(self, act: Callable[[StepHooks, int, int], None]) -> None:
        """``act(hooks, member, row)`` for every member; a member whose hooks raise ``JobCancelled`` leaves."""
        self.alive = [m for row, m in enumerate(self.alive) if _stays(act, self.hooks[m], m, row)]

    def after_step(self, tensors: dict[str, Any], scheduler: Any, before: list[int]) -> dict[str, Any]:
        """What the step callback hands back: the rows of the members that left (since ``before``) dropped."""
        if not self.alive:
            raise Abandoned
        if len(self.alive) == len(before):
            return {}
        return keep_rows(tensors, scheduler, [before.index(m) for m in self.alive], len(before))


def _stays(act: Callable[[StepHooks, int, int], None], hooks: StepHooks, member: int, row: int) -> bool:
    try:
        act(hooks, member, row)
    except JobCancelled:
        return False
    return True


def batchable(pipe: Any, request: JobRequest) -> bool:
    return type(pipe).__name__ in BATCHING_PIPELINES and bool(request.batch_key())


def stack(prompts: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' prompt call arguments (each encoded alone), stacked along the batch."""
    stacked: dict[str, Any] = {}
    for name in prompts[0]:
        values = [p[name] for p in prompts]
        stacked[name] = None if values[0] is None else torch.cat(values)
    return stacked


def keep_rows(tensors: dict[str, Any], scheduler: Any, keep: list[int], size: int) -> dict[str, Any]:
    """``tensors`` (the callback's) and the scheduler's latent-shaped state with only rows ``keep``."""
    index = torch.tensor(keep, dtype=torch.long)

    def select(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim >= 3 and value.shape[0] == size:
            return value.index_select(0, index.to(value.device))
        return value

    for name, value in vars(scheduler).items():
        if isinstance(value, torch.Tensor) and value.ndim >= 4:
            setattr(scheduler, name, select(value))
        elif isinstance(value, list) and any(isinstance(v, torch.Tensor) and v.ndim >= 4 for v in value):
            setattr(scheduler, name, [select(v) for v in value])
    return {name: select(value) for name, value in tensors.items() if value is not None}
