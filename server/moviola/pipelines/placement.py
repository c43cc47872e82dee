"""Where a model's weights live on this card: its memory plan and quantization, then placed by them."""

from __future__ import annotations

from typing import Any

from moviola.catalog import MemoryPlan, ModelSpec
from moviola.errors import FailedPrecondition
from moviola.pipelines import memory, quantize


def plan(spec: ModelSpec, device: str, requested: str, quantization: str, *, fuse: bool) -> MemoryPlan:
    """The memory plan (and quantization) for this card; ``FailedPrecondition`` when none can run here."""
    try:
        plan = spec.memory.choose(memory.card_gib(device), requested, quantization)
    except ValueError as exc:
        raise FailedPrecondition(f"model {spec.id}: {exc}; use a larger card") from exc
    quantize.check(plan.quantize, device)
    if fuse and plan.quantize != "none":
        raise FailedPrecondition("--fuse-lora cannot fuse adapters into quantized weights: choose one")
    return plan


def place(pipe: Any, plan: MemoryPlan, device: str) -> memory.TakingTurns | None:
    """Quantize the transformers and place the pipeline by its memory plan."""
    if plan.name != "resident":  # quantized on the host, before the plan moves weights around
        quantize.quantize(pipe, plan.quantize, device)
    turns = memory.apply(pipe, plan.name, device)
    if plan.name == "resident":  # quantized on the card: much faster than on the host
        quantize.quantize(pipe, plan.quantize, device)
    return turns
