"""Edits: video-to-video with a new prompt, on models with a video-to-video pipeline in diffusers.

``strength`` is how far from the source video the edit may go (0 < s <= 1): the pipeline noises
the source to that point and runs ``int(steps * strength)`` steps back (``docs/api.md``, edits).
"""

from __future__ import annotations

import math

from moviola.catalog import ModelSpec
from moviola.errors import InvalidRequest


def editors(models: dict[str, ModelSpec]) -> list[str]:
    """The models among ``models`` that can edit a video (``ModelSpec.video_pipeline_class``)."""
    return [spec.id for spec in models.values() if spec.video_pipeline_class]


def check_editor(spec: ModelSpec, models: dict[str, ModelSpec]) -> None:
    """``InvalidRequest`` naming ``model`` when ``spec`` cannot edit videos, saying which served models can."""
    if not spec.video_pipeline_class:
        able = ", ".join(editors(models)) or "none is served"
        raise InvalidRequest("model", f"{spec.id} cannot edit videos; served models that can: {able}")


def check_strength(strength: float | None, spec: ModelSpec) -> float:
    """An edit's strength on ``spec``, its default (the catalogue's ``defaults.edit_strength``) filled in;
    ``InvalidRequest`` naming ``strength`` outside 0 < s <= 1."""
    if strength is None:
        return spec.defaults.edit_strength
    if not (math.isfinite(strength) and 0 < strength <= 1):
        raise InvalidRequest("strength", f"must be greater than 0 and at most 1, got {strength:g}")
    return strength


def strength_of(
    edit: bool, strength: float | None, steps: int, spec: ModelSpec, models: dict[str, ModelSpec]
) -> float:
    """The strength a request runs with (0.0 for anything but an edit); ``InvalidRequest`` naming it."""
    if not edit:
        if strength is not None:
            raise InvalidRequest("strength", "only an edit takes it (POST /v1/videos/edits, EditJob)")
        return 0.0
    check_editor(spec, models)
    strength = check_strength(strength, spec)
    if int(steps * strength) < 1:
        raise InvalidRequest(
            "strength", f"runs int({steps} steps x {strength:g}) = 0 steps; raise strength or the steps"
        )
    return strength
