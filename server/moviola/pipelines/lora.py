"""LoRA adapters on a loaded pipeline: checked at start, loaded once, switched per job.

diffusers does the loading (``load_lora_weights`` with peft, which also converts the original Wan
layout of ComfyUI and lightx2v); this module decides what is loaded where and when:

- **Where.** A Wan2.2 adapter that ships one file per expert goes high-noise file to ``transformer``
  and low-noise file to ``transformer_2``; a single file goes to every transformer.
- **When.** At the first job that names it; it then stays, unfused, in an LRU cache of ``capacity``
  adapters beside the base weights, which are never reloaded. The turbo profile's adapter is pinned.
  When the cache is full, the new adapter is hot-swapped into the evicted one's place (diffusers'
  ``hotswap``: its weights copied into the same LoRA layers, no modules added or removed, so a compiled
  transformer keeps its graph); one that fits other layers or ranks replaces it the plain way.
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

import itertools
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


@dataclass(frozen=True)
class _Loaded:
    #: The transformers it is loaded into, and its adapter name there (peft's: no dots, as it is a module key).
    slots: tuple[str, ...]
    peft: str


class AdapterBank:
    def __init__(
        self,
        pipe: Any,
        spec: ModelSpec,
        catalog: AdapterCatalog,
        *,
        cache_dir: Path,
        s3_endpoint: str | None = None,
        capacity: int = 8,
        fuse: bool = False,
        hotswap: bool = True,
        turns: Any = None,
    ) -> None:
        self._pipe = pipe
        self._spec = spec
        self._catalog = catalog
        self._cache_dir = cache_dir
        self._s3_endpoint = s3_endpoint
        self._capacity = capacity
        self._fuse = fuse
        #: Load a new adapter in place of the one it evicts (where both fit the same layers). Not where the
        #: transformers take turns on the card (``expert_swap``): an in-place write there misses their host copies.
        self._slots = {slot: getattr(pipe, slot) for slot in SLOTS if getattr(pipe, slot, None) is not None}
        taking_turns = turns is not None and any(turns.holds(t) for t in self._slots.values())
        self._hotswap = hotswap and not fuse and not taking_turns
        #: ``memory.TakingTurns`` of ``expert_swap``: new adapter weights join its host copies.
        self._turns = turns
        #: Adapter name to where it is loaded, least recently used first.
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._names = itertools.count()
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
        location = sources.locate(adapter.source, self._cache_dir, self._s3_endpoint)
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
            active = self._active(choices, slot)
            if active:
                transformer.enable_lora()
                transformer.set_adapters([peft for peft, _ in active], [scale for _, scale in active])
            elif getattr(transformer, "peft_config", None):
                transformer.disable_lora()
        return loads

    def _fuse_set(self, choices: tuple[LoraChoice, ...]) -> None:
        if choices == self._fused:
            return
        for slot, transformer in self._slots.items():
            if self._fused:
                transformer.unfuse_lora()
            active = self._active(choices, slot)
            if active:  # enabled, or peft's forward would unmerge them again
                names = [peft for peft, _ in active]
                transformer.enable_lora()
                transformer.set_adapters(names, [scale for _, scale in active])
                transformer.fuse_lora(adapter_names=names)
            elif getattr(transformer, "peft_config", None):
                transformer.disable_lora()
        self._fused = choices

    def _active(self, choices: tuple[LoraChoice, ...], slot: str) -> list[tuple[str, float]]:
        """The (peft name, scale) of each chosen adapter loaded into ``slot``."""
        return [
            (self._loaded[c.name].peft, c.scale)
            for c in choices
            if c.name in self._loaded and slot in self._loaded[c.name].slots
        ]

    def _ensure(self, name: str, keep: set[str]) -> AdapterLoad:
        if name in self._bad:
            raise InvalidInput(f"adapter {name} cannot be loaded: {self._bad[name]}")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return AdapterLoad(name, None)
        adapter = self._catalog.get(name)
        if adapter is None or not adapter.applies_to(self._spec):
            raise InvalidInput(f"adapter {name} is not registered for model {self._spec.id} on this worker")
        victim = self._victim(keep)
        started = time.monotonic()
        fresh = f"moviola_{next(self._names)}"
        try:
            files = self._files(adapter)  # resolved once: an S3 source is fetched here
            loaded = self._swapped_in(adapter, files, victim) if victim is not None else None
            if loaded is None:
                if victim is not None:
                    self._drop(victim)
                loaded = _Loaded(self._load(files, fresh), fresh)
        except (InvalidInput, Unavailable):  # Unavailable: S3 away for now, the next job tries again
            raise
        except Exception as exc:  # hub, S3, safetensors, peft: whatever fails, the adapter is unusable
            self._bad[name] = f"{type(exc).__name__}: {exc}"
            self._delete(fresh, tuple(self._slots))
            log.warning("adapter %s failed to load and is marked bad: %s", name, self._bad[name])
            raise InvalidInput(f"adapter {name} cannot be loaded: {self._bad[name]}") from exc
        self._loaded[name] = loaded
        seconds = time.monotonic() - started
        log.info("adapter %s loaded into %s in %.2fs", name, ", ".join(loaded.slots), seconds)
        return AdapterLoad(name, seconds)

    def _swapped_in(
        self, adapter: AdapterSpec, files: list[tuple[str, str, str]], victim: str
    ) -> _Loaded | None:
        """``adapter`` loaded in place of ``victim`` (diffusers' hot-swap: the same layers, no new modules, so
        a compiled transformer is not recompiled); None where it cannot be, and the victim is then dropped."""
        if not self._hotswap:
            return None
        old = self._loaded[victim]
        if tuple(slot for slot, _, _ in files) != old.slots:
            return None
        try:
            self._load(files, old.peft, hotswap=True)
        except Exception as exc:  # other layers or ranks: peft refuses, and the victim is half replaced
            log.info(
                "adapter %s cannot be hot-swapped in place of %s (%s): loading it anew",
                adapter.name,
                victim,
                exc,
            )
            self._drop(victim)
            return None
        del self._loaded[victim]
        log.info("adapter %s hot-swapped in place of %s (cache of %d)", adapter.name, victim, self._capacity)
        return old

    def _load(
        self, files: list[tuple[str, str, str]], peft: str, *, hotswap: bool = False
    ) -> tuple[str, ...]:
        """Load each (slot, location, weight name) of an adapter as ``peft``; the slots it went into."""
        slots = []
        for slot, location, weight in files:
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
                    adapter_name=peft,
                    load_into_transformer_2=slot == "transformer_2",
                    hotswap=hotswap,
                )
            slots.append(slot)
            if self._turns is not None:
                self._turns.adopt(self._slots[slot])
        return tuple(slots)

    def _victim(self, keep: set[str]) -> str | None:
        """The least recently used adapter to make room for one more, when the cache is full (never a
        pinned or wanted one); None when there is room (or nothing may go)."""
        if len(self._loaded) - len(self._pinned & set(self._loaded)) < self._capacity:
            return None
        return next((n for n in self._loaded if n not in keep and n not in self._pinned), None)

    def _drop(self, name: str) -> None:
        loaded = self._loaded.pop(name)
        self._delete(loaded.peft, loaded.slots)
        log.info("adapter %s unloaded (cache of %d)", name, self._capacity)

    def _delete(self, peft: str, slots: tuple[str, ...]) -> None:
        for slot in slots:
            transformer = self._slots[slot]
            if peft in (getattr(transformer, "peft_config", None) or {}):
                transformer.delete_adapters([peft])


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
