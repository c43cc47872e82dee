"""Sizes callers name (Sora's ``"1280x720"``) and the size a model makes for each.

Sora's four sizes map to the model's own size of the same orientation: its catalogue
``size_map`` where it has one, else the nearest (by pixel count) of its presets and default
size, turned to the asked orientation. ``--strict-sizes`` turns mapping off.
"""

from __future__ import annotations

from moviola.catalog import ModelSpec
from moviola.errors import InvalidRequest

#: The sizes the hosted Sora API takes.
SORA_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")


def _oriented(width: int, height: int, portrait: bool) -> tuple[int, int]:
    return (min(width, height), max(width, height)) if portrait else (max(width, height), min(width, height))


def nearest(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The model's own size nearest ``width`` x ``height`` in pixels, in the same orientation."""
    portrait = height > width
    limit = spec.limits.max_size
    own = {
        _oriented(w, h, portrait)
        for w, h in [*spec.presets.values(), (spec.defaults.width, spec.defaults.height)]
    }
    fitting = [size for size in own if max(size) <= limit] or sorted(own)
    return min(fitting, key=lambda size: (abs(size[0] * size[1] - width * height), -size[0] * size[1]))


def made(spec: ModelSpec, size: str, width: int, height: int, *, strict: bool) -> tuple[int, int]:
    """The size ``spec`` makes for the ``size`` a caller named (already parsed as ``width``, ``height``)."""
    if strict or size not in SORA_SIZES:
        return width, height
    return spec.size_map.get(size) or nearest(spec, width, height)


def parse_size(size: str) -> tuple[int, int]:
    """``"WxH"`` (the REST face's ``size``) as width and height; ``InvalidRequest`` naming ``size``."""
    width, sep, height = size.strip().lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or len(size) > 16:
        raise InvalidRequest("size", f"must be WIDTHxHEIGHT in pixels, like 832x480 (got {size[:32]!r})")
    return int(width), int(height)
