"""How a request asks its video to be made: a speed profile and LoRA adapters, checked before it is queued.

``validation.validate`` calls these; each raises ``InvalidRequest`` naming the proto field.
"""

from __future__ import annotations

import math

from moviola.adapters import MAX_LORAS, MAX_SCALE, AdapterCatalog
from moviola.catalog import SPEED_PROFILES, ModelSpec
from moviola.errors import InvalidRequest
from moviola.jobs import LoraChoice

__all__ = ["MAX_LORAS", "check_profile", "loras", "turbo"]
#: A request's speed profile; "": the worker's default.
PROFILES = ("", *SPEED_PROFILES)


def check_profile(profile: str, spec: ModelSpec) -> None:
    """The profile is one ``spec`` has ("": the worker's default)."""
    if profile not in PROFILES:
        raise InvalidRequest("speed_profile", "must be exact, fast or turbo (or unset: the worker's default)")
    if profile == "fast" and spec.fast_threshold <= 0:
        raise InvalidRequest("speed_profile", f"model {spec.id} has no fast profile")
    if profile == "turbo" and spec.turbo is None:
        raise InvalidRequest("speed_profile", f"model {spec.id} has no turbo profile")


def turbo(
    spec: ModelSpec, steps: int, guidance: float | None, guidance_2: float | None
) -> tuple[int, float, float | None]:
    """Steps and guidance under ``spec``'s turbo profile: its steps (a request may ask up to its maximum) and
    guidance off; a guidance value other than 1 is refused (no classifier-free guidance runs)."""
    profile = spec.turbo
    assert profile is not None, "check_profile first"
    for name, value in (("guidance_scale", guidance), ("guidance_scale_2", guidance_2)):
        if value is not None and value != 1.0:
            raise InvalidRequest(
                name,
                "has no effect under the turbo profile, which runs without classifier-free guidance "
                "(one transformer pass a step): leave it unset",
            )
    if steps > profile.max_steps:
        raise InvalidRequest(
            "num_inference_steps",
            f"must be within 1..{profile.max_steps} under the turbo profile of model {spec.id} "
            f"(its distillation runs {profile.steps}; got {steps})",
        )
    return steps or profile.steps, 1.0, 1.0 if spec.mixture_of_experts else None


def loras(
    named: tuple[tuple[str, float | None], ...], spec: ModelSpec, adapters: AdapterCatalog
) -> tuple[LoraChoice, ...]:
    """The adapters named, checked against those registered for ``spec``; scale 0 drops one."""
    if len(named) > MAX_LORAS:
        raise InvalidRequest("loras", f"at most {MAX_LORAS} adapters a request (got {len(named)})")
    chosen: list[LoraChoice] = []
    seen: set[str] = set()
    for i, (name, scale) in enumerate(named):
        field = f"loras[{i}].name"
        adapter = adapters.get(name)
        if adapter is None or not adapter.callers:
            served = ", ".join(a.name for a in adapters.for_model(spec)) or "none"
            raise InvalidRequest(field, f"unknown adapter {name!r}; model {spec.id} serves: {served}")
        if not adapter.applies_to(spec):
            raise InvalidRequest(
                field, f"adapter {name} is for {', '.join(adapter.base)}, not model {spec.id} ({spec.family})"
            )
        if name in seen:
            raise InvalidRequest(field, f"adapter {name} is named twice")
        seen.add(name)
        value = 1.0 if scale is None else scale
        if math.isnan(value) or not -MAX_SCALE <= value <= MAX_SCALE:
            raise InvalidRequest(
                f"loras[{i}].scale", f"must be within -{MAX_SCALE:g}..{MAX_SCALE:g} (got {value:g})"
            )
        if value != 0:
            chosen.append(LoraChoice(name, value))
    return tuple(chosen)
