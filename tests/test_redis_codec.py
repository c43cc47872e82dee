"""The Redis queue's JSON for requests and events (``scheduler/redis/codec.py``): ``as_dict`` writes what
``dataclasses.asdict`` would, without its copies, and everything decodes back to what was encoded.
SUBMIT's JSON is checked against its documentation in ``test_redis_contract.py``."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from moviola.jobs import (
    Completed,
    Expert,
    JobRequest,
    LoraChoice,
    Preview,
    Priority,
    Progress,
    Timings,
)
from moviola.scheduler.redis.codec import as_dict, decode_kind, decode_request, encode_kind, encode_request

_text = st.text(max_size=20)
_number = st.floats(allow_nan=False, allow_infinity=False, width=32)
_loras = st.lists(st.builds(LoraChoice, name=_text, scale=_number), max_size=3).map(tuple)

requests = st.builds(
    JobRequest,
    model=_text,
    prompt=_text,
    negative_prompt=_text,
    image=st.none() | st.binary(max_size=40),
    width=st.integers(0, 4096),
    height=st.integers(0, 4096),
    num_frames=st.integers(0, 500),
    fps=st.integers(0, 60),
    num_inference_steps=st.integers(0, 100),
    guidance_scale=_number,
    guidance_scale_2=st.none() | _number,
    seed=st.integers(0, 2**63 - 1),
    priority=st.sampled_from(Priority),
    start_by=st.none() | _number,
    webhook_events=st.lists(_text, max_size=3).map(tuple),
    loras=_loras,
)


def _as_json(value: Any) -> Any:
    """What JSON makes of a value (tuples and lists alike, bytes as their text, enums as their names)."""
    return json.loads(json.dumps(value, default=lambda v: v.name if hasattr(v, "name") else repr(v)))


@given(requests)
def test_a_request_is_written_as_asdict_writes_it_and_read_back_whole(request: JobRequest) -> None:
    assert _as_json(as_dict(request)) == _as_json(asdict(request))
    assert decode_request(encode_request(request)) == request


@given(
    timings=st.builds(Timings, queued=_number, running=_number, storing=_number),
    loras=_loras,
    image=st.binary(max_size=30),
)
def test_events_with_nested_values_are_read_back_whole(
    timings: Timings, loras: tuple[LoraChoice, ...], image: bytes
) -> None:
    completed = Completed(
        video_uri="file:///v.mp4",
        width=16,
        height=16,
        num_frames=1,
        fps=8,
        seed=1,
        model="m",
        timings=timings,
        size_bytes=10,
        loras=loras,
    )
    progress = Progress(
        step=1,
        total_steps=2,
        timestep=0.5,
        expert=Expert.HIGH_NOISE,
        elapsed=0.1,
        remaining=0.1,
        preview=Preview(image=image, width=8, height=8),
        loras=loras,
    )
    for kind in (completed, progress):
        assert decode_kind(encode_kind(kind)) == kind
    written = json.loads(encode_kind(progress))
    assert written["preview"]["image"] == base64.b64encode(image).decode()
