"""Cancellation: a queued job never runs; a running one stops at the next step and writes nothing."""

from __future__ import annotations

from pathlib import Path

from helpers import kinds, path_of

from moviola.client import Client
from moviola.v1 import job_pb2 as pb


def test_cancel_mid_run_stops_skips_decode_writes_nothing_and_the_pipeline_still_works(
    client: Client, data_dir: Path
) -> None:
    before = set((data_dir / "videos").glob("*"))
    events = []
    for event in client.generate("a red fox", num_frames=9, num_inference_steps=50, seed=3):
        events.append(event)
        if event.WhichOneof("kind") == "progress" and event.progress.step == 2:
            cancelled = client.cancel(event.job_id)
            assert cancelled.id == event.job_id
    assert kinds(events)[-1] == "cancelled"
    assert "cancelled by request" in events[-1].cancelled.reason
    steps = [e.progress.step for e in events if e.WhichOneof("kind") == "progress"]
    assert 2 <= len(steps) < 50
    phases = [e.phase_changed.phase for e in events if e.WhichOneof("kind") == "phase_changed"]
    assert pb.PHASE_VAE_DECODING not in phases
    assert set((data_dir / "videos").glob("*")) == before  # no video, no partial file
    job = client.get(events[0].job_id)
    assert job.state == pb.JOB_STATE_CANCELLED
    assert not job.result.video_uri

    after = list(client.generate("a red fox", num_frames=9, num_inference_steps=3))
    assert kinds(after)[-1] == "completed"
    assert path_of(after[-1].completed.video_uri).exists()


def test_cancel_queued_job_never_runs(client: Client) -> None:
    running = client.submit("first", num_frames=9, num_inference_steps=50)
    queued = client.submit("second", num_inference_steps=2)
    assert queued.state == pb.JOB_STATE_QUEUED
    client.cancel(queued.id)
    events = list(client.watch(queued.id))
    assert kinds(events) == ["queued", "cancelled"] or kinds(events)[-1] == "cancelled"
    assert "started" not in kinds(events)
    client.cancel(running.id)
    assert list(client.watch(running.id))[-1].WhichOneof("kind") == "cancelled"


def test_cancel_finished_job_changes_nothing(client: Client) -> None:
    events = list(client.generate("x", num_frames=1, num_inference_steps=1))
    job = client.cancel(events[0].job_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert list(client.watch(events[0].job_id, after_sequence=job.last_sequence)) == []


def test_client_disconnect_does_not_cancel_the_job(client: Client) -> None:
    stream = client.generate("leave early", num_frames=5, num_inference_steps=6)
    first = next(stream)
    stream.close()  # type: ignore[attr-defined]  # the caller goes away (a gRPC call is also a Call)
    events = list(client.watch(first.job_id, after_sequence=first.sequence))
    assert kinds(events)[-1] == "completed"
    assert events[0].sequence == first.sequence + 1
