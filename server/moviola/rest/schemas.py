"""JSON Schema shapes the REST face's OpenAPI document repeats (``openapi.py`` and the routes' own schemas)."""

from __future__ import annotations

from typing import Any


def list_of(items: dict[str, Any], required: tuple[str, ...] = (), **more: Any) -> dict[str, Any]:
    """An OpenAI-style list, ``{"object": "list", "data": [...]}``, with ``more`` properties (those in
    ``required`` always there)."""
    return {
        "type": "object",
        "required": ["object", "data", *required],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": items}, **more},
    }
