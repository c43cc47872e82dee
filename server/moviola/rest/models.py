"""``GET /v1/models``: OpenAI's model list, each entry with what a create form needs to offer for it.

OpenAI's four fields (``id``, ``object``, ``created``, ``owned_by``), then Moviola's: the served model
an alias runs, whether a worker serves it now, its sizes and lengths, whether it takes an image,
its speed profiles and the LoRA adapters the caller's key may name.
"""

from __future__ import annotations

from typing import Any

from moviola.catalog import SPEED_PROFILES
from moviola.rest import schemas
from moviola.service import ModelStatus


def sizes(status: ModelStatus) -> list[str]:
    """``WxH`` the model makes: its default first, then its named presets."""
    spec = status.spec
    found = [f"{spec.defaults.width}x{spec.defaults.height}"]
    found += [f"{w}x{h}" for w, h in spec.presets.values() if max(w, h) <= spec.limits.max_size]
    return list(dict.fromkeys(found))


def entries(status: ModelStatus) -> list[dict[str, Any]]:
    """One entry for the model and one for each of its aliases (``sora-2``), each naming the model it runs."""
    spec = status.spec
    described = {
        "moviola_model": spec.id,
        "ready": status.ready,
        "description": spec.description,
        "image_input": spec.image_input.value,
        "sizes": sizes(status),
        "default_seconds": spec.defaults.num_frames / spec.defaults.fps,
        "max_seconds": spec.limits.max_seconds,
        "default_steps": spec.defaults.num_inference_steps,
        "default_edit_strength": spec.default_edit_strength,
        "speed_profiles": [p for p in SPEED_PROFILES if p != "turbo" or spec.turbo is not None],
        "adapters": [adapter.name for adapter in status.adapters],
    }
    return [
        {"id": name, "object": "model", "created": 0, "owned_by": "moviola"} | described
        for name in (spec.id, *status.aliases)
    ]


_STRINGS = {"type": "array", "items": {"type": "string"}}
#: The list's schema in the OpenAPI document.
SCHEMA = schemas.list_of(
    {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {
                "type": "string",
                "description": "A model id or an alias (sora-2) to put in model.",
            },
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
            "moviola_model": {"type": "string", "description": "The served model it runs."},
            "ready": {"type": "boolean", "description": "Whether a live worker serves it now."},
            "description": {"type": "string"},
            "image_input": {
                "type": "string",
                "enum": ["unsupported", "optional", "required"],
                "description": "Whether input_reference is refused, may be given, or must be.",
            },
            "sizes": _STRINGS | {"description": "WxH sizes it makes, its default first."},
            "default_seconds": {"type": "number"},
            "max_seconds": {
                "type": "number",
                "description": "The longest video (segments past one window).",
            },
            "default_steps": {"type": "integer"},
            "default_edit_strength": {
                "type": ["number", "null"],
                "description": "An edit's strength when it names none; null: the model cannot edit.",
            },
            "speed_profiles": _STRINGS,
            "adapters": _STRINGS | {"description": "LoRA adapters this key may name in loras."},
        },
    }
)
