"""Explicit JSON encoding of jobs and events for the Redis queue (never pickle)."""

from __future__ import annotations

import base64
import json
from dataclasses import fields, is_dataclass
from typing import Any

from moviola.jobs import (
    Cancelled,
    Completed,
    EventKind,
    Expert,
    Failed,
    FailureCode,
    JobRequest,
    LoraChoice,
    Phase,
    PhaseChanged,
    Preview,
    Priority,
    Progress,
    Queued,
    Started,
    Timings,
)

KINDS: dict[str, type[Any]] = {
    "queued": Queued,
    "started": Started,
    "phase_changed": PhaseChanged,
    "progress": Progress,
    "completed": Completed,
    "failed": Failed,
    "cancelled": Cancelled,
}
NAMES = {kind: name for name, kind in KINDS.items()}


#: What JSON writes as it is (every other value is a dataclass, a tuple of values, or an enum below).
_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def as_dict(value: Any) -> dict[str, Any]:
    """A dataclass as ``dataclasses.asdict`` makes it (nested dataclasses and tuples of them converted),
    without its deep copy of every value: ours are immutable. Five times faster on a ``JobRequest``."""
    return {name: _plain(getattr(value, name)) for name in _names(type(value))}


def _plain(value: Any) -> Any:
    if type(value) in _ATOMS:
        return value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return as_dict(value)
    return value


def encode_request(request: JobRequest) -> str:
    data = as_dict(request)
    data["image"] = base64.b64encode(request.image).decode() if request.image is not None else None
    data["priority"] = request.priority.name.lower()
    return json.dumps(data, separators=(",", ":"))


def decode_request(text: str | bytes) -> JobRequest:
    data = json.loads(text)
    data["image"] = base64.b64decode(data["image"]) if data["image"] is not None else None
    data["priority"] = Priority[data["priority"].upper()]
    data["webhook_events"] = tuple(data.get("webhook_events", ()))
    data["loras"] = _loras(data.get("loras", ()))
    return JobRequest(**data)


def _loras(items: list[dict[str, Any]]) -> tuple[LoraChoice, ...]:
    return tuple(LoraChoice(**item) for item in items)


def encode_kind(kind: EventKind) -> str:
    data: dict[str, Any] = {"type": NAMES[type(kind)]}
    for name in _names(type(kind)):
        value = getattr(kind, name)
        if type(value) in _ATOMS:
            pass
        elif isinstance(value, Preview):
            value = as_dict(value) | {"image": base64.b64encode(value.image).decode()}
        elif isinstance(value, Phase | Expert | FailureCode):
            value = value.value
        else:  # Timings, the adapters
            value = _plain(value)
        data[name] = value
    return json.dumps(data, separators=(",", ":"))


def decode_kind(text: str | bytes) -> EventKind:
    data = json.loads(text)
    kind = KINDS[data.pop("type")]
    if kind is PhaseChanged:
        data["phase"] = Phase(data["phase"])
    elif kind is Progress:
        data["expert"] = Expert(data["expert"])
        data["loras"] = _loras(data.get("loras", ()))
        if data.get("preview") is not None:
            data["preview"] = Preview(
                **(data["preview"] | {"image": base64.b64decode(data["preview"]["image"])})
            )
    elif kind is Failed:
        data["code"] = FailureCode(data["code"])
    elif kind is Completed:
        data["timings"] = Timings(**data["timings"])
        data["loras"] = _loras(data.get("loras", ()))
    result: EventKind = kind(**data)
    return result
