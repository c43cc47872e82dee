"""A worker that leaves (SIGTERM) hands its running job back; a slow but alive one keeps it."""

from __future__ import annotations

from pathlib import Path

from helpers import kinds
from processes import gateway, worker

from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb


def leaving_worker_running_a_job(url: str, data_dir: Path, client: Client) -> tuple[ServerProcess, pb.Job]:
    """A worker that hands its job back 0.2 s after SIGTERM, once that job (5 s long) is running."""
    leaving = worker(url, data_dir, "leaving", "--drain-grace", "0.2", step_seconds=0.1).start()
    job = client.submit("long", num_inference_steps=50)
    for event in client.watch(job.id):
        if event.HasField("progress"):
            break
    return leaving, job


def test_worker_sigterm_hands_the_running_job_to_another_worker(redis_url: str, tmp_path: Path) -> None:
    with gateway(redis_url) as gw, Client(gw.address) as client:
        first, job = leaving_worker_running_a_job(redis_url, tmp_path, client)
        first.terminate()
        assert first.wait(30) == 0
        with worker(redis_url, tmp_path, "taking-over", step_seconds=0.01):
            events = list(client.watch(job.id))
        assert kinds(events)[-1] == "completed"
        started = [e.started for e in events if e.HasField("started")]
        assert [s.worker for s in started] == ["leaving", "taking-over"]


def test_a_handed_back_job_goes_first_and_the_jobs_behind_it_learn_their_new_positions(
    redis_url: str, tmp_path: Path
) -> None:
    with gateway(redis_url) as gw, Client(gw.address) as client:
        first, job = leaving_worker_running_a_job(redis_url, tmp_path, client)
        behind = [client.submit("next", num_inference_steps=1), client.submit("last", num_inference_steps=1)]
        assert [client.get(j.id).queue_position for j in behind] == [1, 2]
        first.terminate()
        assert first.wait(30) == 0
        assert [client.get(j.id).queue_position for j in [job, *behind]] == [1, 2, 3]
        seen = []
        for event in client.watch(job.id):  # up to its QUEUED event after STARTED, which tells its place
            seen.append(event)
            if event.HasField("queued") and "started" in kinds(seen):
                break
        assert seen[-1].queued.position == 1
        with worker(redis_url, tmp_path, "taking-over", step_seconds=0.01):
            runs = {j.id: list(client.watch(j.id)) for j in [job, *behind]}

        def started(events: list[pb.JobEvent]) -> int:
            return next(e.time.ToNanoseconds() for e in reversed(events) if e.HasField("started"))

        assert all(kinds(events)[-1] == "completed" for events in runs.values())
        assert sorted(runs, key=lambda j: started(runs[j])) == [job.id, *(j.id for j in behind)]
        assert [e.queued.position for e in runs[behind[1].id] if e.HasField("queued")] == [2, 3, 2, 1]


def test_slow_but_alive_worker_is_never_double_claimed(redis_url: str, tmp_path: Path) -> None:
    with gateway(redis_url) as gw, Client(gw.address) as client:
        with worker(redis_url, tmp_path, "slow", "--lease", "1", step_seconds=0.3):
            job = client.submit("takes 4.5 s, lease 1 s", num_inference_steps=15)
            events = []
            for event in client.watch(job.id):  # until the slow worker has it
                events.append(event)
                if event.HasField("started"):
                    break
            with worker(redis_url, tmp_path, "idle", "--lease", "1"):  # free, and reclaiming all along
                events += list(client.watch(job.id, events[-1].sequence))
        assert kinds(events)[-1] == "completed"
        assert [e.started.worker for e in events if e.HasField("started")] == ["slow"]
