"""WatchJob replays after a sequence number and then follows live, without gaps or duplicates."""

from __future__ import annotations

import pytest
from helpers import kinds

from moviola.client import Client, InvalidArgument, NotFound
from moviola.v1 import job_pb2 as pb


def test_watch_replays_everything_after_any_sequence(client: Client) -> None:
    events = list(client.generate("a dog", num_frames=5, num_inference_steps=4))
    job_id = events[0].job_id
    for after in (0, 1, 5, len(events) - 1):
        replay = list(client.watch(job_id, after_sequence=after))
        assert replay == events[after:]


def test_resume_mid_job_from_the_last_sequence_seen(client: Client) -> None:
    seen: list[pb.JobEvent] = []
    for event in client.generate("a cat", num_frames=9, num_inference_steps=12):
        seen.append(event)
        if event.WhichOneof("kind") == "progress" and event.progress.step == 3:
            break  # the connection drops here
    rest = list(client.watch(seen[0].job_id, after_sequence=seen[-1].sequence))
    combined = [e.sequence for e in seen + rest]
    assert combined == list(range(1, len(combined) + 1))
    assert kinds(rest)[-1] == "completed"
    steps = [e.progress.step for e in seen + rest if e.WhichOneof("kind") == "progress"]
    assert steps == list(range(1, 13))


def test_watch_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound):
        list(client.watch("0123456789abcdef"))
    with pytest.raises(NotFound):
        client.get("0123456789abcdef")
    with pytest.raises(NotFound):
        client.cancel("0123456789abcdef")


def test_empty_job_id_is_invalid(client: Client) -> None:
    with pytest.raises(InvalidArgument) as info:
        client.get("")
    assert info.value.field == "job_id"


def test_deadline_ends_the_stream_not_the_job(client: Client) -> None:
    import grpc

    from moviola.client import MoviolaError

    stream = client.generate("slow", width=256, height=256, num_frames=17, num_inference_steps=50, timeout=2)
    seen: list[pb.JobEvent] = []
    with pytest.raises(MoviolaError) as info:
        seen.extend(stream)  # keeps what arrived before the deadline
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert seen
    assert seen[0].HasField("queued")
    rest = list(client.watch(seen[0].job_id, after_sequence=seen[-1].sequence))
    assert rest[-1].HasField("completed")
