"""Quantized transformer weights (``--quantize``, or a memory plan's ``quantize``) with torchao.

- ``int8``: int8 weight-only: half of bf16's memory, runs on every device (the portable choice).
- ``fp8``: float8 (e4m3) weight-only: half of bf16's memory, dequantized to the compute dtype per layer.
- ``fp8-dynamic``: float8 weights and activations, quantized per row at run time: float8 matmuls on
  cards of compute capability 8.9 and above (L4, L40S, H100, H200); refused anywhere else.

Only the transformers are quantized: they are nearly all of the weights and all of the step time.
An impossible choice is refused when the model loads, before the worker says ready
(``FailedPrecondition`` with the reason), as ``--attention-backend`` is.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from moviola.errors import FailedPrecondition
from moviola.pipelines.speed import transformers

log = logging.getLogger(__name__)

#: Compute capability that float8 matmuls need (Ada and Hopper).
FP8_CAPABILITY = (8, 9)


def _config(how: str, device: str) -> Any:
    try:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            Float8WeightOnlyConfig,
            Int8WeightOnlyConfig,
        )
    except ImportError as exc:
        raise FailedPrecondition(
            f"--quantize {how} needs torchao, which is not installed: pip install 'moviola[worker]'"
        ) from exc
    if how == "int8":
        return Int8WeightOnlyConfig()
    if how == "fp8":
        return Float8WeightOnlyConfig()
    if not device.startswith("cuda"):
        raise FailedPrecondition(
            f"--quantize fp8-dynamic runs float8 matmuls, which need a CUDA card of compute capability "
            f"8.9 or above; this worker runs on {device}: use fp8 (weight-only) or int8"
        )
    capability = torch.cuda.get_device_capability(torch.device(device))
    if capability < FP8_CAPABILITY:
        raise FailedPrecondition(
            f"--quantize fp8-dynamic needs compute capability 8.9 or above (L4, L40S, H100); this card has "
            f"{capability[0]}.{capability[1]}: use fp8 (weight-only) or int8"
        )
    return Float8DynamicActivationFloat8WeightConfig()


def check(how: str, device: str) -> None:
    """``FailedPrecondition`` when ``how`` cannot run on ``device`` (before anything is loaded)."""
    if how != "none":
        _config(how, device)


def quantize(pipe: Any, how: str, device: str) -> None:
    """Quantize every transformer of ``pipe`` in place, as ``how`` says (``none``: leave them)."""
    if how == "none":
        return
    from torchao.quantization import quantize_

    config = _config(how, device)
    for transformer in transformers(pipe):
        try:
            quantize_(transformer, config)
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise FailedPrecondition(f"--quantize {how}: {type(exc).__name__}: {exc}") from exc
    log.info("transformers quantized: %s", how)
