"""The floor under ``bench/scheduler.py``: what the same path costs here with nothing of Moviola in it.

A skeleton of Moviola's Redis mode: the caller makes a server-streaming gRPC call to a bare ``grpc.aio``
gateway (on uvloop, as Moviola's), which pushes the job onto a Redis list, sends a QUEUED message and
then streams the job's events as a worker appends them to the job's own list; two workers block on the
queue (``BLPOP``), append STARTED, then in one call the eight other events a no-op Moviola job has
(phases, progress, completed). Ten messages of 200 bytes a job, as Moviola's ten events. No
validation, protobuf, durability, leases, fair share, webhooks or video: what is left is gRPC, redis-py
and the kernel. The same load as ``bench/scheduler.py``: dispatch latency (send to STARTED) over
sequential jobs, throughput and CPU per job from 32 callers.

With ``--work`` each worker also does, on a thread of its own as Moviola's pipeline thread does, the
work a no-op Moviola job cannot skip (``job_work.py``: its one-frame MP4, poster and spritesheet and
the durable write of the three files). That is the floor a design that
stores a video per job can reach here; the difference to Moviola is Moviola's own per-job code.

    python bench/floor.py [--latency-jobs 200] [--throughput-jobs 1000] [--work]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import job_work
import load
import redis
import redis.asyncio as aioredis
import uvloop
from cpu import CpuMeter

from percentiles import percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.servers import RedisServer

from moviola.testing import free_port

METHOD = "/floor.Gateway/Generate"
QUEUE = "floor:queue"
#: What a no-op job of Moviola's sends its caller: QUEUED, STARTED, then these eight.
LATER_EVENTS = 8
PAYLOAD = 200


def events_key(job: bytes) -> str:
    return f"floor:events:{job.decode()}"


async def gateway(url: str, port: int) -> None:
    """One process: the gRPC server that queues each call's job and streams its events back."""
    client = aioredis.Redis.from_url(url, max_connections=256)

    async def generate(request: bytes, context: Any) -> AsyncIterator[bytes]:
        job = uuid.uuid4().hex.encode()
        await client.lpush(QUEUE, job)
        yield b"q" * PAYLOAD
        key, sent = events_key(job), 1
        while sent < 2 + LATER_EVENTS:
            _, first = await client.blpop([key], timeout=30)
            rest = await client.lpop(key, 100) or []
            for event in [first, *rest]:
                yield event
                sent += 1
        await client.delete(key)

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(generate)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("floor.Gateway", {"Generate": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def worker(url: str, work: bool) -> None:
    """One process: take a job, say it started (when, for the latency), append its other events;
    ``work``: do the job's own work on a thread in between (``job_work.py``)."""
    client = aioredis.Redis.from_url(url)
    loop, pipeline = asyncio.get_running_loop(), ThreadPoolExecutor(max_workers=1)
    where = job_work.folder()
    print("ready", flush=True)
    while True:
        _, job = await client.blpop([QUEUE])
        started = f"{time.time():.6f}".encode().ljust(PAYLOAD, b"s")
        await client.rpush(events_key(job), started)
        if work:
            await loop.run_in_executor(pipeline, job_work.run, where, job.decode())
        await client.rpush(events_key(job), *[b"e" * PAYLOAD] * LATER_EVENTS)


def start(role: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--role", role, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def callers(
    port: int, latency_jobs: int, throughput_jobs: int, meter: CpuMeter
) -> tuple[list[float], float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(METHOD)

        async def one() -> float:
            sent = time.time()
            replies = [reply async for reply in call(b"")]
            assert len(replies) == 2 + LATER_EVENTS, len(replies)
            return float(replies[1][:17].rstrip(b"s")) - sent

        latencies = [await one() for _ in range(latency_jobs)]
        return latencies, await load.throughput(one, throughput_jobs, meter)


def measure(
    latency_jobs: int, throughput_jobs: int, *, work: bool = False
) -> tuple[list[float], float, dict[str, float]]:
    """The skeleton on a redis-server of its own: dispatch latencies, jobs/s, CPU per job by process (ms);
    ``work``: its workers do each job's own work too (``job_work.py``)."""
    with RedisServer() as server:
        port = free_port()
        processes = {"gateway": start("gateway", "--redis", server.url, "--port", str(port))}
        worker = ["--redis", server.url, *(["--work"] if work else [])]
        processes |= {f"worker {i}": start("worker", *worker) for i in range(2)}
        info: dict[str, Any] = redis.Redis.from_url(server.url).info("server")  # type: ignore[assignment]
        meter = CpuMeter({"redis": int(info["process_id"])} | {name: p.pid for name, p in processes.items()})
        try:
            latencies, rate = uvloop.run(callers(port, latency_jobs, throughput_jobs, meter))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)
    return latencies, rate, meter.per_job(throughput_jobs)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--throughput-jobs", type=int, default=1000)
    parser.add_argument("--work", action="store_true", help="workers also encode and store each job's video")
    parser.add_argument("--role", choices=["gateway", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "gateway":
        uvloop.run(gateway(args.redis, args.port))
        return 0
    if args.role == "worker":
        uvloop.run(worker(args.redis, args.work))
        return 0
    latencies, rate, cpu = measure(args.latency_jobs, args.throughput_jobs, work=args.work)
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    with_work = ", each job's MP4, images and durable write" if args.work else ""
    print(f"the floor: a bare grpc.aio gateway, two BLPOP workers{with_work}, one redis-server")
    print(f"  dispatch p50 {p50:.2f} ms   p99 {p99:.2f} ms   throughput {rate:.1f} jobs/s")
    print("  CPU per job (ms): " + "  ".join(f"{name} {ms:.2f}" for name, ms in cpu.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
