"""Fan-out: one job watched by N ``WatchJob`` streams on one gateway (Redis mode), against bare grpc.

For each N: a job is queued before any worker runs; N streams over ``N/100`` connections watch it
and each gets its QUEUED event; then a worker (``simulated-worker``: the real worker, a pipeline
that only pretends) runs it. Reported: the streams' end statuses, whether every stream got the
identical sequence and the video's URI, first-to-last completion (seconds), and the gateway's RSS
per stream. The same client then holds N streams on a bare ``grpc.aio`` server (one generic
handler: one message, a wait on an event, as many messages as the job has) and releases them at
once: what gRPC in Python costs alone, on the same machine in the same run. Ratios: Moviola over
bare.

    python bench/fanout.py [--watchers 1000 3000 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness import fanout
from harness.fuzz import rss_bytes
from harness.servers import RedisServer

from moviola.client import Client
from moviola.testing import ServerProcess, free_port

MODEL = "tiny-wan2.2-t2v"
#: Messages the bare server sends each stream after the release (a tiny job's events, about).
BARE_MESSAGES = 15


def bare_server(port: int) -> None:
    """A grpc.aio server whose streams send one message, wait for ``/b.S/Go``, then send the rest."""

    async def main() -> None:
        go = asyncio.Event()

        async def watch(request: bytes, context: object) -> object:
            yield b"q"
            await go.wait()
            for _ in range(BARE_MESSAGES):
                yield b"event"

        async def release(request: bytes, context: object) -> bytes:
            go.set()
            return b""

        limit = [
            ("grpc.server.max_pending_requests", 50_000),
            ("grpc.server.max_pending_requests_hard_limit", 50_000),
        ]
        server = grpc.aio.server(options=limit)
        handlers: dict[str, Any] = {
            "W": grpc.unary_stream_rpc_method_handler(watch),
            "Go": grpc.unary_unary_rpc_method_handler(release),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("b.S", handlers),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def _bare(count: int) -> tuple[float, float]:
    """Seconds first-to-last end and RSS bytes per stream on the bare server (in its own process)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)])
    try:
        return asyncio.run(_bare_streams(f"127.0.0.1:{port}", process.pid, count))
    finally:
        process.kill()
        process.wait()


async def _bare_streams(address: str, pid: int, count: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(address) as probe:
        await probe.channel_ready()
    before = rss_bytes(pid)
    channels = [grpc.aio.insecure_channel(address) for _ in range(-(-count // 100))]
    firsts = [asyncio.Event() for _ in range(count)]
    ends = [0.0] * count

    async def one(i: int) -> None:
        stream: Any = channels[i // 100].unary_stream("/b.S/W")
        async for _ in stream(b""):
            firsts[i].set()
        ends[i] = time.monotonic()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.gather(*(first.wait() for first in firsts))
    per_stream = (rss_bytes(pid) - before) / count
    async with grpc.aio.insecure_channel(address) as control:
        release: Any = control.unary_unary("/b.S/Go")
        await release(b"")
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return max(ends) - min(ends), per_stream


async def _moviola(redis_url: str, data: Path, count: int) -> dict[str, object]:
    with ServerProcess(["--redis-url", redis_url, "--accept-without-workers"]) as gateway:
        with Client(gateway.address) as client:
            job = client.submit("a fox", model=MODEL, num_inference_steps=8)
        before = rss_bytes(gateway.pid)
        fan = await fanout.attach(gateway.address, job.id, count)
        per_stream = (rss_bytes(gateway.pid) - before) / count
        worker = ServerProcess(
            ["--redis-url", redis_url, "--data-dir", str(data), "--name", "w", "--model", MODEL],
            program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
            worker=True,
        )
        with worker:
            await fanout.finish(fan, timeout=300)
        await fan.close()
    sequences = {tuple(w.events) for w in fan.watchers if w.status == "OK"}
    uris = {w.video_uri for w in fan.watchers if w.status == "OK"}
    return {
        "statuses": fan.statuses(),
        "identical": len(sequences) == 1 and len(uris) == 1 and "" not in uris,
        "spread": fan.spread(),
        "per_stream": per_stream,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--watchers", type=int, nargs="+", default=[1000, 3000, 10_000])
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        for count in args.watchers:
            ours = asyncio.run(_moviola(redis_server.url, Path(tmp), count))
            bare_spread, bare_memory = _bare(count)
            spread, memory = float(str(ours["spread"])), float(str(ours["per_stream"]))
            rows.append(
                f"| {count:,} | {ours['statuses']} | {'yes' if ours['identical'] else 'NO'} "
                f"| {spread * 1000:.0f} ms | {bare_spread * 1000:.0f} ms ({spread / bare_spread:.2f}x) "
                f"| {memory / 1024:.1f} KB | {bare_memory / 1024:.1f} KB ({memory / bare_memory:.2f}x) |"
            )
            print(rows[-1], flush=True)
    print(
        "\n| watchers | statuses | identical sequence and URI | first→last completion | bare grpc.aio "
        "(ratio) | gateway RSS per stream | bare grpc.aio (ratio) |\n|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
