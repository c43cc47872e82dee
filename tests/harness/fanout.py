"""Many watchers of one job on one gateway: what each got, when each ended, and what the gateway held.

The job is queued before any worker runs; ``attach`` opens N ``WatchJob`` streams spread over
``ceil(N / per_channel)`` connections and waits until each has its QUEUED event; the caller then
starts a worker; ``finish`` collects every stream to its end. ``bench/fanout.py`` and
``tests/test_fanout.py`` use it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc as gen_grpc

#: gRPC channel options: many concurrent streams on one connection.
OPTIONS = [("grpc.max_concurrent_streams", 1000)]


@dataclass
class Watcher:
    #: (sequence, kind) of every event, in order.
    events: list[tuple[int, str]] = field(default_factory=list)
    video_uri: str = ""
    #: The status the stream ended with ("OK", else the code's name) and when (monotonic).
    status: str = ""
    details: str = ""
    ended: float = 0.0


@dataclass
class FanOut:
    watchers: list[Watcher]
    tasks: list[asyncio.Task[None]]
    channels: list[grpc.aio.Channel]

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for watcher in self.watchers:
            counts[watcher.status] = counts.get(watcher.status, 0) + 1
        return counts

    def spread(self) -> float:
        """Seconds from the first watcher's completion to the last's."""
        ends = [w.ended for w in self.watchers if w.status == "OK"]
        return max(ends) - min(ends) if ends else math.inf

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for channel in self.channels:
            await channel.close()


async def _follow(
    stub: gen_grpc.GenerationServiceStub, job_id: str, watcher: Watcher, first: asyncio.Event
) -> None:
    call: Any = stub.WatchJob(gen.WatchJobRequest(job_id=job_id))
    try:
        async for response in call:
            event = response.event
            kind = str(event.WhichOneof("kind"))
            watcher.events.append((event.sequence, kind))
            if kind == "completed":
                watcher.video_uri = event.completed.video_uri
            first.set()
        watcher.status = "OK"
    except grpc.aio.AioRpcError as error:
        watcher.status, watcher.details = error.code().name, str(error.details())
    finally:
        watcher.ended = time.monotonic()
        first.set()


async def attach(address: str, job_id: str, count: int, *, per_channel: int = 100) -> FanOut:
    """Open ``count`` watchers of ``job_id`` and return once each has its first event (or ended)."""
    channels = [
        grpc.aio.insecure_channel(address, options=OPTIONS) for _ in range(math.ceil(count / per_channel))
    ]
    stubs = [gen_grpc.GenerationServiceStub(channel) for channel in channels]
    watchers = [Watcher() for _ in range(count)]
    firsts = [asyncio.Event() for _ in range(count)]
    tasks = [
        asyncio.create_task(_follow(stubs[i // per_channel], job_id, watchers[i], firsts[i]))
        for i in range(count)
    ]
    await asyncio.gather(*(first.wait() for first in firsts))
    return FanOut(watchers, tasks, channels)


async def finish(fan: FanOut, timeout: float) -> None:
    """Wait for every stream to end (``timeout`` seconds at most)."""
    await asyncio.wait_for(asyncio.gather(*fan.tasks, return_exceptions=True), timeout)
