"""LoRA adapters on a loaded pipeline: checked at start, loaded once, switched per job.

diffusers does the loading (``load_lora_weights`` with peft, which also converts the original Wan
layout of ComfyUI and lightx2v); this module decides what is loaded where and when:

- **Where.** A Wan2.2 adapter that ships one file per expert goes high-noise file to ``transformer``
  and low-noise file to ``transformer_2``; a single file goes to every transformer.
- **When.** At the first job that names it; it then stays, unfused, in an LRU cache of ``capacity``
  adapters beside the base weights, which are never reloaded. The turbo profile's adapter is pinned.
- **Switching.** Before every job the transformers get exactly the job's adapters and scales
  (``set_adapters``), or none (``disable_lora``): a job without adapters after one with them runs the
  base weights alone, bit for bit. With ``fuse``, the active set is fused into the weights (faster
  steps) and unfused when the set changes (within float rounding of the base, not bit for bit).
- **Failure.** ``check`` reads every local adapter's file at start-up and refuses one that does not
  parse or does not fit the transformers (``FailedPrecondition`` naming the file). One only found at
  first use (hub, S3) that fails there fails its job ``InvalidInput`` and is marked bad, so that later
  jobs naming it fail at once with the same reason; the worker stays healthy.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moviola.adapters import AdapterCatalog, AdapterSpec
from moviola.catalog import BUILTIN_PREFIX, ModelSpec
from moviola.errors import FailedPrecondition, InvalidInput, Unavailable
from moviola.jobs import LoraChoice
from moviola.pipelines import sources

log = logging.getLogger(__name__)

SLOTS = ("transformer", "transformer_2")


@dataclass(frozen=True)
class AdapterLoad:
    """One adapter a job needed: loaded now (``seconds``) or found in the cache (None)."""

    name: str
    seconds: float | None


def _peft_name(name: str) -> str:
    """A name peft accepts (no dots: it becomes a module key) and never confuses with another."""
    return "moviola_" + hashlib.sha1(name.encode()).hexdigest()[:16]


class AdapterBank:
    def __init__(
        self,
        pipe: Any,
        spec: ModelSpec,
        catalog: AdapterCatalog,
        *,
        cache_dir: Path,
        capacity: int = 8,
        fuse: bool = False,
        turns: Any = None,
    ) -> None:
        self._pipe = pipe
        self._spec = spec
        self._catalog = catalog
        self._cache_dir = cache_dir
        self._capacity = capacity
        self._fuse = fuse
        #: ``memory.TakingTurns`` of ``expert_swap``: new adapter weights join its host copies.
        self._turns = turns
        self._slots = {slot: getattr(pipe, slot) for slot in SLOTS if getattr(pipe, slot, None) is not None}
        #: Adapter name to the slots it is loaded into, least recently used first.
        self._loaded: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._bad: dict[str, str] = {}
        self._pinned = {spec.turbo.adapter} if spec.turbo is not None else set()
        self._fused: tuple[LoraChoice, ...] = ()
        #: Told of every adapter a job needed (the worker's metrics); called on the pipeline thread.
        self.listener: Callable[[AdapterLoad], None] | None = None

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def check(self) -> None:
        """Read every local adapter of this model and check it fits; ``FailedPrecondition`` naming the file."""
        if not hasattr(type(self._pipe), "lora_state_dict"):
            if self._catalog.for_model(self._spec, callers_only=False):
                raise FailedPrecondition(
                    f"model {self._spec.id} ({type(self._pipe).__name__}) cannot take LoRA adapters"
                )
            return
        for adapter in self._catalog.for_model(self._spec, callers_only=False):
            if adapter.source.startswith(BUILTIN_PREFIX) or sources.is_local(adapter.source):
                for slot, location, weight in self._files(adapter):
                    try:
                        state = self._state(location, weight)
                        _fits(state, self._slots[slot])
                    except Exception as exc:  # any reader's error: the file is unusable, say which
                        where = f"{location}/{weight}" if weight else location
                        raise FailedPrecondition(f"adapter {adapter.name}: {where}: {exc}") from exc

    def _files(self, adapter: AdapterSpec) -> list[tuple[str, str, str]]:
        """(slot, local path or hub id, weight name) of each file, slot by slot."""
        location = sources.locate(adapter.source, self._cache_dir)
        if adapter.per_expert:
            if "transformer_2" not in self._slots:
                raise InvalidInput(f"adapter {adapter.name} has one file per expert; {self._spec.id} has one")
            return [
                ("transformer", location, adapter.high_noise),
                ("transformer_2", location, adapter.low_noise),
            ]
        return [(slot, location, adapter.weight_name) for slot in self._slots]

    def _state(self, location: str, weight: str) -> dict[str, Any]:
        state: dict[str, Any] = type(self._pipe).lora_state_dict(location, weight_name=weight or None)
        return state

    def activate(self, choices: tuple[LoraChoice, ...]) -> list[AdapterLoad]:
        """Give the transformers exactly ``choices``; what had to be loaded. ``InvalidInput`` for a bad one."""
        loads = [self._ensure(choice.name, keep={c.name for c in choices}) for choice in choices]
        if self.listener is not None:
            for load in loads:
                self.listener(load)
        if self._fuse:
            self._fuse_set(choices)
            return loads
        for slot, transformer in self._slots.items():
            active = [c for c in choices if slot in self._loaded.get(c.name, ())]
            if active:
                transformer.enable_lora()
                transformer.set_adapters([_peft_name(c.name) for c in active], [c.scale for c in active])
            elif getattr(transformer, "peft_config", None):
                transformer.disable_lora()
        return loads

    def _fuse_set(self, choices: tuple[LoraChoice, ...]) -> None:
        if choices == self._fused:
            return
        for slot, transformer in self._slots.items():
            if self._fused:
                transformer.unfuse_lora()
            active = [c for c in choices if slot in self._loaded.get(c.name, ())]
            if active:  # enabled, or peft's forward would unmerge them again
                names = [_peft_name(c.name) for c in active]
                transformer.enable_lora()
                transformer.set_adapters(names, [c.scale for c in active])
                transformer.fuse_lora(adapter_names=names)
            elif getattr(transformer, "peft_config", None):
                transformer.disable_lora()
        self._fused = choices

    def _ensure(self, name: str, keep: set[str]) -> AdapterLoad:
        if name in self._bad:
            raise InvalidInput(f"adapter {name} cannot be loaded: {self._bad[name]}")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return AdapterLoad(name, None)
        adapter = self._catalog.get(name)
        if adapter is None or not adapter.applies_to(self._spec):
            raise InvalidInput(f"adapter {name} is not registered for model {self._spec.id} on this worker")
        self._evict(keep)
        started = time.monotonic()
        try:
            slots = self._load(adapter)
        except (InvalidInput, Unavailable):  # Unavailable: S3 away for now, the next job tries again
            raise
        except Exception as exc:  # hub, S3, safetensors, peft: whatever fails, the adapter is unusable
            self._bad[name] = f"{type(exc).__name__}: {exc}"
            self._unload(name, tuple(self._slots))
            log.warning("adapter %s failed to load and is marked bad: %s", name, self._bad[name])
            raise InvalidInput(f"adapter {name} cannot be loaded: {self._bad[name]}") from exc
        self._loaded[name] = slots
        seconds = time.monotonic() - started
        log.info("adapter %s loaded into %s in %.2fs", name, ", ".join(slots), seconds)
        return AdapterLoad(name, seconds)

    def _load(self, adapter: AdapterSpec) -> tuple[str, ...]:
        slots = []
        for slot, location, weight in self._files(adapter):
            with (
                warnings.catch_warnings()
            ):  # peft warns that a second adapter joins the first: the point here
                warnings.filterwarnings(
                    "ignore", message="Already found a `peft_config`", category=UserWarning
                )
                # On quantized weights peft cannot merge; Moviola never merges those (--fuse-lora is refused).
                warnings.filterwarnings(
                    "ignore", message="TorchaoLoraLinear was instantiated", category=UserWarning
                )
                self._pipe.load_lora_weights(
                    location,
                    weight_name=weight or None,
                    adapter_name=_peft_name(adapter.name),
                    load_into_transformer_2=slot == "transformer_2",
                )
            slots.append(slot)
            if self._turns is not None:
                self._turns.adopt(self._slots[slot])
        return tuple(slots)

    def _evict(self, keep: set[str]) -> None:
        """Unload the least recently used adapters until one more fits (never pinned or wanted ones)."""
        while len(self._loaded) >= self._capacity + len(self._pinned & set(self._loaded)):
            victim = next((n for n in self._loaded if n not in keep and n not in self._pinned), None)
            if victim is None:
                return
            self._unload(victim, self._loaded.pop(victim))
            log.info("adapter %s unloaded (cache of %d)", victim, self._capacity)

    def _unload(self, name: str, slots: tuple[str, ...]) -> None:
        for slot in slots:
            transformer = self._slots[slot]
            if _peft_name(name) in (getattr(transformer, "peft_config", None) or {}):
                transformer.delete_adapters([_peft_name(name)])


def _fits(state: dict[str, Any], transformer: Any) -> None:
    """``ValueError`` unless every LoRA tensor of ``state`` targets a layer of ``transformer`` it fits."""
    if not state:
        raise ValueError("holds no LoRA weights")
    modules = dict(transformer.named_modules())
    for key, tensor in state.items():
        if "lora" not in key:
            raise ValueError(f"{key} is not a LoRA weight")
        name = key.removeprefix("transformer.")
        for suffix, dim, size in (
            (".lora_A.weight", 1, "in_features"),
            (".lora_B.weight", 0, "out_features"),
        ):
            if not name.endswith(suffix):
                continue
            module = modules.get(name.removesuffix(suffix))
            if module is None:
                raise ValueError(f"{key} targets no layer of {type(transformer).__name__}")
            if tensor.shape[dim] != getattr(module, size):
                raise ValueError(
                    f"{key} has shape {tuple(tensor.shape)}, which does not fit the layer's "
                    f"{size} {getattr(module, size)}: an adapter of another model"
                )
