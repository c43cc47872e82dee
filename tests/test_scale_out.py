"""Gateways and workers as separate processes on a real redis-server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness.servers import RedisServer
from helpers import kinds
from processes import gateway, worker

from moviola.client import AsyncClient, Client, Unavailable
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[tuple[list[ServerProcess], list[ServerProcess]]]:
    with ExitStack() as stack:
        gateways = [stack.enter_context(gateway(redis_url)) for _ in range(2)]
        workers = [
            stack.enter_context(worker(redis_url, tmp_path, f"w{i}", "--lease", "3")) for i in range(2)
        ]
        yield gateways, workers


def test_submit_through_one_gateway_watch_and_cancel_through_the_other(
    cluster: tuple[list[ServerProcess], list[ServerProcess]],
) -> None:
    (a, b), _ = cluster
    with Client(a.address) as one, Client(b.address) as other:
        job = one.submit("a fox", num_inference_steps=5, num_frames=5)
        events = list(other.watch(job.id))
        assert kinds(events)[-1] == "completed"
        assert other.get(job.id).state == pb.JOB_STATE_COMPLETED
        assert events[1].started.worker in ("w0", "w1")

        long_jobs = [one.submit(f"long {i}", num_inference_steps=50) for i in range(2)]
        queued = one.submit("never runs", num_inference_steps=1)
        assert other.get(queued.id).state == pb.JOB_STATE_QUEUED
        other.cancel(queued.id)
        assert kinds(list(one.watch(queued.id))) == ["queued", "cancelled"]
        for running in long_jobs:
            for event in other.watch(running.id):
                if event.HasField("progress"):
                    break
            other.cancel(running.id)
            tail = list(one.watch(running.id))
            assert kinds(tail)[-1] == "cancelled"
            steps = [e.progress.step for e in tail if e.HasField("progress")]
            assert max(steps, default=0) < 50


def test_resume_through_another_gateway_after_the_first_dies(redis_url: str, tmp_path: Path) -> None:
    with gateway(redis_url) as a, gateway(redis_url) as b, worker(redis_url, tmp_path, "w"):
        seen = []
        with Client(a.address) as one:
            for event in one.generate("resume me", num_inference_steps=30, num_frames=5):
                seen.append(event)
                if event.HasField("progress") and event.progress.step == 3:
                    a.kill()
                    break
        with Client(b.address) as other:
            rest = list(other.watch(seen[0].job_id, after_sequence=seen[-1].sequence))
        sequences = [e.sequence for e in seen + rest]
        assert sequences == list(range(1, len(sequences) + 1))
        assert kinds(rest)[-1] == "completed"


def test_many_watchers_on_one_gateway_share_its_redis_connections(redis_url: str, tmp_path: Path) -> None:
    """One blocking read of the event feed serves every stream: not one Redis connection per watcher."""
    watchers = 40
    with gateway(redis_url) as gw, worker(redis_url, tmp_path, "w", step_seconds=0.2):

        async def scenario() -> tuple[list[list[pb.JobEvent]], int, int]:
            async with AsyncClient(gw.address) as client:
                job = await client.submit("watched", num_inference_steps=50)  # 10 s
                live = asyncio.Semaphore(0)

                async def watch() -> list[pb.JobEvent]:
                    events: list[pb.JobEvent] = []
                    async for event in client.watch(job.id):
                        events.append(event)
                        if event.HasField("progress") and event.progress.step == 1:
                            live.release()
                    return events

                tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
                for _ in range(watchers):
                    await asyncio.wait_for(live.acquire(), 30)
                connections = len(await asyncio.to_thread(redis.Redis.from_url(redis_url).client_list))  # type: ignore[arg-type]
                state = (await client.get(job.id)).state
                await client.cancel(job.id)
                return await asyncio.gather(*tasks), connections, state

        streams, connections, state = asyncio.run(scenario())
    assert state == pb.JOB_STATE_RUNNING  # counted while every watcher was waiting for more
    assert connections < watchers // 2, connections
    first = streams[0]
    assert [e.sequence for e in first] == list(range(1, len(first) + 1))
    assert kinds(first)[-1] == "cancelled"
    assert all(stream == first for stream in streams)


def test_chaos_workers_killed_at_random_lose_no_job(redis_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    lease = "1.5"  # a killed worker's job is taken over 1.5 s later

    def start_worker(name: str) -> ServerProcess:
        return worker(
            redis_url, tmp_path, name, "--lease", lease, "--max-attempts", "10", step_seconds=0.03
        ).start()

    workers = [start_worker(f"w{i}") for i in range(3)]
    try:
        with gateway(redis_url, "--max-queue-depth", "100") as gw, Client(gw.address) as client:
            jobs = [
                client.submit(f"job {i}", num_inference_steps=rng.randint(5, 20), num_frames=1)
                for i in range(40)
            ]
            kills = 0
            with ThreadPoolExecutor(8) as pool:
                watches = [pool.submit(lambda j=job.id: list(client.watch(j))) for job in jobs]  # type: ignore[misc]
                # Kill a random worker at random moments (0.3 to 1 s apart) until every job has ended.
                while kills < 12 and wait(watches, timeout=rng.uniform(0.3, 1.0)).not_done:
                    index = rng.randrange(len(workers))
                    workers[index].kill()
                    kills += 1
                    workers[index] = start_worker(f"w{index}-{kills}")
                results = {job.id: future.result(120) for job, future in zip(jobs, watches, strict=True)}
        reruns = 0
        for job_id, events in results.items():
            terminal = [k for k in kinds(events) if k in ("completed", "failed", "cancelled")]
            assert terminal == ["completed"], (job_id, kinds(events))
            reruns += kinds(events).count("started") - 1
        print(f"\n40 jobs, {kills} workers killed, {reruns} re-runs, every job completed exactly once")
        assert kills > 0
    finally:
        for w in workers:
            w.stop()


def test_chaos_redis_restarted_under_load_two_workers_go_on(tmp_path: Path) -> None:
    """SIGKILL redis-server while two workers run jobs, restart it 3 s later on its port and AOF folder."""
    aof = tmp_path / "aof"
    aof.mkdir()
    server = RedisServer(aof_dir=aof).start()
    try:
        with (
            gateway(server.url, "--max-queue-depth", "100") as gw,
            worker(server.url, tmp_path, "w0", "--lease", "3", step_seconds=0.05) as w0,
            worker(server.url, tmp_path, "w1", "--lease", "3", step_seconds=0.05) as w1,
            Client(gw.address) as client,
        ):
            jobs = [client.submit(f"load {i}", num_inference_steps=10, num_frames=1) for i in range(12)]
            for event in client.watch(jobs[1].id):  # both workers are mid-job
                if event.WhichOneof("kind") == "progress":
                    break
            server.kill()
            time.sleep(3)  # the outage itself, not a wait for something to happen
            server = RedisServer(aof_dir=aof, port=server.port).start()
            wait_health(gw.address, health_pb2.HealthCheckResponse.SERVING)
            for job in jobs:
                terminal = [k for k in kinds(list(client.watch(job.id))) if k in TERMINAL]
                assert terminal == ["completed"], job.id
            # Both workers take jobs again: nothing needed restarting.
            after = [client.submit(f"after {i}", num_inference_steps=10, num_frames=1) for i in range(6)]
            ran_on = set()
            for job in after:
                events = list(client.watch(job.id))
                assert kinds(events)[-1] == "completed"
                ran_on |= {e.started.worker for e in events if e.WhichOneof("kind") == "started"}
            assert ran_on == {"w0", "w1"}
            assert w0.running
            assert w1.running
    finally:
        server.stop()


def test_a_worker_paused_past_its_lease_takes_jobs_again_once_resumed(redis_url: str, tmp_path: Path) -> None:
    with (
        gateway(redis_url) as gw,
        worker(redis_url, tmp_path, "paused", "--lease", "1", step_seconds=0.05) as paused,
        Client(gw.address) as client,
    ):
        job = client.submit("long", num_inference_steps=40, num_frames=1)
        for event in client.watch(job.id):
            if event.WhichOneof("kind") == "progress":
                break
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            with worker(redis_url, tmp_path, "other", "--lease", "1", step_seconds=0.05):
                events = list(client.watch(job.id))  # taken over once the paused worker's lease ran out
                assert kinds(events)[-1] == "completed"
                assert [e.started.worker for e in events if e.WhichOneof("kind") == "started"] == [
                    "paused",
                    "other",
                ]
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        # Alone again, the resumed worker runs every later job.
        for i in range(3):
            later = list(client.watch(client.submit(f"later {i}", num_inference_steps=2, num_frames=1).id))
            assert kinds(later)[-1] == "completed"
            assert {e.started.worker for e in later if e.WhichOneof("kind") == "started"} == {"paused"}


def test_poison_job_lands_in_the_dead_letter_stream(redis_url: str, tmp_path: Path) -> None:
    args = ["--lease", "1", "--max-attempts", "2", "--poison-prompt", "poison"]
    with gateway(redis_url) as gw, Client(gw.address) as client:
        job = client.submit("poison", num_inference_steps=1)
        for attempt in range(2):
            w = worker(redis_url, tmp_path, f"w{attempt}", *args).start()
            assert w.wait(60) != 0  # the job killed it
        survivor = worker(redis_url, tmp_path, "survivor", *args).start()
        try:
            events = list(client.watch(job.id))
            assert kinds(events)[-1] == "failed"
            assert events[-1].failed.code == pb.FAILURE_CODE_DEAD_LETTERED
            assert "after 2 attempts" in events[-1].failed.message
            assert kinds(events).count("started") == 2
            healthy = client.submit("healthy", num_inference_steps=1)
            assert kinds(list(client.watch(healthy.id)))[-1] == "completed"
            cli = [sys.executable, "-m", "moviola.client.cli", "jobs"]
            import subprocess

            listed = subprocess.run(
                [*cli, "dead-letters", "--server", gw.address], capture_output=True, text=True
            )
            assert job.id in listed.stdout
            assert "lease expired" in listed.stdout
            requeued = subprocess.run(
                [*cli, "requeue", job.id, "--server", gw.address], capture_output=True, text=True
            )
            assert requeued.returncode == 0, requeued.stderr
            assert (
                job.id
                not in subprocess.run(
                    [*cli, "dead-letters", "--server", gw.address], capture_output=True, text=True
                ).stdout
            )
        finally:
            survivor.stop()


def test_queued_jobs_survive_a_redis_restart_with_aof(tmp_path: Path) -> None:
    server = RedisServer(aof_dir=tmp_path).start()
    try:
        with gateway(server.url) as gw, Client(gw.address) as client:
            jobs = [client.submit(f"persist {i}", num_inference_steps=2) for i in range(3)]
            server.stop()
            server = RedisServer(aof_dir=tmp_path, port=server.port).start()
            with worker(server.url, tmp_path, "after-restart"):
                for job in jobs:
                    assert kinds(list(client.watch(job.id)))[-1] == "completed"
    finally:
        server.stop()


def wait_health(address: str, wanted: int) -> None:
    with grpc.insecure_channel(address) as channel:
        # The stubs of grpcio-health-checking lack Watch (it is generated at run time).
        health: Any = health_pb2_grpc.HealthStub(channel)
        for reply in health.Watch(health_pb2.HealthCheckRequest(), timeout=30):
            if reply.status == wanted:
                return


def test_redis_outage_gateway_not_serving_then_recovers(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        with gateway(server.url) as gw, worker(server.url, tmp_path, "w"), Client(gw.address) as client:
            server.kill()
            wait_health(gw.address, health_pb2.HealthCheckResponse.NOT_SERVING)
            with pytest.raises(Unavailable):
                client.submit("while down", num_inference_steps=1)
            server = RedisServer(port=server.port).start()
            wait_health(gw.address, health_pb2.HealthCheckResponse.SERVING)
            job = client.submit(
                "after", num_inference_steps=1, idempotency_key="after"
            )  # retried if UNAVAILABLE
            assert kinds(list(client.watch(job.id)))[-1] == "completed"
    finally:
        server.stop()


def test_workers_go_on_after_redis_loses_its_data(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        with gateway(server.url) as gw, worker(server.url, tmp_path, "w"), Client(gw.address) as client:
            assert (
                kinds(list(client.watch(client.submit("before", num_inference_steps=1).id)))[-1]
                == "completed"
            )
            server.kill()
            server = RedisServer(
                port=server.port
            ).start()  # empty: no jobs, no consumer groups, no wake stream
            job = client.submit(
                "after", num_inference_steps=1, idempotency_key="after"
            )  # retried if UNAVAILABLE
            assert kinds(list(client.watch(job.id)))[-1] == "completed"
    finally:
        server.stop()


def test_overload_is_refused_and_memory_stays_bounded(redis_url: str) -> None:
    with gateway(redis_url, "--max-queue-depth", "5") as gw, Client(gw.address) as client:
        with redis.Redis.from_url(redis_url) as r:
            r.zadd(
                "moviola:workers:tiny-wan2.2-t2v", {"phantom": 10**10}
            )  # a live worker that never takes jobs
        accepted, refused = 0, []
        for i in range(200):
            try:
                client.submit(f"flood {i}", num_inference_steps=1)
                accepted += 1
            except Exception as exc:
                refused.append(exc)
        assert accepted == 5
        assert len(refused) == 195
        assert all(getattr(e, "retry_after", None) for e in refused)
        with redis.Redis.from_url(redis_url) as r:
            assert len(r.keys("moviola:job:*")) == 5
            assert r.zcard("moviola:queue:tiny-wan2.2-t2v:interactive:waiting") == 5
