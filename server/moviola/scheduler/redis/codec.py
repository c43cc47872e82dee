"""Explicit JSON encoding of jobs and events for the Redis queue (never pickle)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, fields
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


def encode_request(request: JobRequest) -> str:
    data = asdict(request)
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
    for f in fields(kind):
        value = getattr(kind, f.name)
        if isinstance(value, Timings):
            value = asdict(value)
        elif isinstance(value, Preview):
            value = asdict(value) | {"image": base64.b64encode(value.image).decode()}
        elif isinstance(value, Phase | Expert | FailureCode):
            value = value.value
        elif f.name == "loras":
            value = [asdict(lora) for lora in value]
        data[f.name] = value
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
