"""The request as a worker runs it: its speed profile resolved against the worker's default."""

from __future__ import annotations

from dataclasses import replace

from moviola import tuning
from moviola.catalog import ModelSpec
from moviola.jobs import JobRequest


def profile_of(request: JobRequest, spec: ModelSpec, default: str) -> str:
    """The request's profile, else the worker's ``default`` where the model has it, else exact."""
    if request.speed_profile:
        return request.speed_profile
    if default == "fast" and spec.fast_threshold > 0:
        return "fast"
    if default == "turbo" and spec.turbo is not None:
        return "turbo"
    return "exact"


def as_run(request: JobRequest, spec: ModelSpec, default: str) -> JobRequest:
    """``request`` with the profile resolved. One that named no profile, on a turbo worker, runs turbo's
    steps without guidance (what the operator chose)."""
    profile = profile_of(request, spec, default)
    if profile == "turbo" and not request.speed_profile:
        steps, guidance, guidance_2 = tuning.turbo(spec, 0, None, None)
        request = replace(
            request, num_inference_steps=steps, guidance_scale=guidance, guidance_scale_2=guidance_2
        )
    return replace(request, speed_profile=profile)
