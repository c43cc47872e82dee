"""Memory plans: how a worker keeps its model on a card smaller than the model (catalogue ``memory.plans``).

- ``resident``: every component on the card (the fastest; Wan2.2-A14B needs an 80 GB card).
- ``encoder_offload``: the transformers stay on the card; the text encoder is on it only while it
  encodes (a pinned host copy, dropped when a transformer runs). With fp8 experts (13.3 GiB each),
  Wan2.2-A14B's two experts stay resident on a 40 GB A100: no expert swap at the boundary step.
- ``model_offload``: diffusers' model CPU offload: each component is moved onto the card when it runs
  and off when the next one does (text encoder, transformer(s), VAE); every move is a copy both ways.
- ``expert_swap``: the big components (text encoder, each Wan2.2 expert) take turns on the card, the
  rest stays. Each keeps a pinned host copy of its weights, so a turn ends by dropping the card's copy
  (weights never change: nothing is copied back) and the next begins with one host-to-card copy. The
  inactive expert is never on the card; the swap happens when the boundary step calls the next
  expert. Wan2.2-A14B on a 40 GB A100: one expert (26.6 GiB) and its activations, never two.
- ``group_offload``: diffusers' group offloading, block by block, with the next block's copy
  prefetched on a side CUDA stream while the current one computes (transformers, block level; the
  text encoder, leaf level). For 24 GB cards (g5's A10G): a few blocks on the card at a time.

On the CPU every plan runs too (the copies are no-ops), so tests check what each plan does to the
output: nothing.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

#: The components that take turns on the card under ``expert_swap``, in pipeline order.
TURNS = ("text_encoder", "transformer", "transformer_2")


def card_gib(device: str) -> float | None:
    """The accelerator's memory in GiB; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    return float(torch.cuda.get_device_properties(torch.device(device)).total_memory) / 2**30


def _modules(pipe: Any) -> dict[str, torch.nn.Module]:
    return {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


def apply(pipe: Any, plan: str, device: str) -> TakingTurns | None:
    """Place ``pipe``'s components on ``device`` as ``plan`` says; the ``TakingTurns`` of ``expert_swap`` and
    ``encoder_offload``."""
    if plan == "model_offload" and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
        return None
    if plan in ("encoder_offload", "expert_swap"):
        return _taking_turns(pipe, device, TURNS if plan == "expert_swap" else ("text_encoder",))
    if plan == "group_offload":
        _group_offload(pipe, device)
        return None
    pipe.to(device)  # resident (and model_offload without an accelerator)
    return None


def _taking_turns(pipe: Any, device: str, names: tuple[str, ...]) -> TakingTurns | None:
    """``names`` take turns on the card; the other components stay on it, and a resident transformer's
    call drops whichever of ``names`` is there (``encoder_offload``: the text encoder)."""
    modules = _modules(pipe)
    for name, module in modules.items():
        if name not in names:
            module.to(device)
    turns = [modules[name] for name in names if name in modules]
    releasers = [m for name, m in modules.items() if name.startswith("transformer") and name not in names]
    return TakingTurns(turns, device, releasers=releasers) if turns else None


def _group_offload(pipe: Any, device: str) -> None:
    from diffusers.hooks.group_offloading import apply_group_offloading

    cuda = device.startswith("cuda")
    for name, module in _modules(pipe).items():
        if name.startswith("transformer"):
            module.enable_group_offload(  # type: ignore[operator]
                torch.device(device), offload_type="block_level", num_blocks_per_group=1, use_stream=cuda
            )
        elif name == "text_encoder":
            apply_group_offloading(module, torch.device(device), offload_type="leaf_level", use_stream=cuda)
        else:
            module.to(device)


def _tensors(module: torch.nn.Module) -> Any:
    return itertools.chain(module.named_parameters(), module.named_buffers())


class TakingTurns:
    """Modules that take turns on ``device``: calling one (a forward pre-hook) puts it there, alone."""

    def __init__(
        self,
        modules: list[torch.nn.Module],
        device: str,
        *,
        releasers: list[torch.nn.Module] | tuple[()] = (),
    ) -> None:
        self._device = torch.device(device)
        self._host: dict[int, dict[str, torch.Tensor]] = {}
        self._on: torch.nn.Module | None = None
        for module in modules:
            self._host[id(module)] = {}
            self.adopt(module)
            module.register_forward_pre_hook(self._before)
        for module in releasers:  # resident modules that want the card to themselves when they run
            module.register_forward_pre_hook(lambda _module, _args: self.release())
        #: Class names of the modules put on the device, in order (what the logs and tests read).
        self.turns: list[str] = []

    def holds(self, module: torch.nn.Module) -> bool:
        """Whether ``module`` is one of those taking turns."""
        return id(module) in self._host

    def release(self) -> None:
        """The module on the device back to its host copy (the card's copy is dropped: weights never change)."""
        if self._on is None:
            return
        host = self._host[id(self._on)]
        for name, tensor in _tensors(self._on):
            tensor.data = host[name]
        self._on = None

    def adopt(self, module: torch.nn.Module) -> None:
        """Keep a host copy of each of ``module``'s tensors that has none yet (all of them at the start; a LoRA
        adapter's, added later): they take turns with the rest."""
        copies = self._host.get(id(module))
        if copies is None:
            return
        pin = self._device.type == "cuda"
        for name, tensor in _tensors(module):
            if name not in copies:
                host = tensor.detach().to("cpu")
                copies[name] = host.pin_memory() if pin else host
                tensor.data = copies[name] if self._on is not module else host.to(self._device)

    def _before(self, module: torch.nn.Module, _args: object) -> None:
        self.ensure(module)

    @property
    def on_device(self) -> torch.nn.Module | None:
        return self._on

    def ensure(self, module: torch.nn.Module) -> None:
        """``module`` on the device, and the one that was there back to its host copy."""
        if self._on is module:
            return
        self.release()
        host = self._host[id(module)]
        for name, tensor in _tensors(module):
            tensor.data = host[name].to(self._device, non_blocking=True)
        self._on = module
        self.turns.append(type(module).__name__)
