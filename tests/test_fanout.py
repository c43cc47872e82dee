"""Thousands of watchers of one job on one gateway (Redis mode): each gets the whole, identical sequence
through a bounded Redis pool; past ``--max-streams`` a stream is refused RESOURCE_EXHAUSTED, never dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from harness import fanout
from processes import gateway, worker

from moviola.client import Client, ResourceExhausted

WATCHERS = 3000
POOL = 8


@pytest.mark.timeout(300)
def test_three_thousand_watchers_get_the_same_events_through_a_small_pool(
    redis_url: str, tmp_path: Path
) -> None:
    store = redis.Redis.from_url(redis_url)
    with gateway(redis_url, "--redis-max-connections", str(POOL)) as gw, Client(gw.address) as client:
        job = client.submit("a fox", model="tiny-wan2.2-t2v", num_inference_steps=8)

        async def watch() -> tuple[fanout.FanOut, int]:
            fan = await fanout.attach(gw.address, job.id, WATCHERS)
            clients: dict[str, int] = store.info("clients")  # type: ignore[assignment]
            connected = int(clients["connected_clients"])
            with worker(redis_url, tmp_path, "w", "--model", "tiny-wan2.2-t2v"):
                await fanout.finish(fan, timeout=120)
            await fan.close()
            return fan, connected

        fan, connected = asyncio.run(watch())
    assert fan.statuses() == {"OK": WATCHERS}  # none CANCELLED with nothing, as before
    sequences = {tuple(w.events) for w in fan.watchers}
    assert len(sequences) == 1
    (events,) = sequences
    assert [sequence for sequence, _ in events] == list(range(1, len(events) + 1))
    assert events[0][1] == "queued"
    assert events[-1][1] == "completed"
    assert len({w.video_uri for w in fan.watchers}) == 1
    assert fan.watchers[0].video_uri
    assert connected <= POOL + 1  # the gateway's pool, and this test's own connection


def test_past_max_streams_a_watch_is_refused_with_a_retry_delay(redis_url: str) -> None:
    with gateway(redis_url, "--max-streams", "20") as gw, Client(gw.address) as client:
        job = client.submit("a fox", model="tiny-wan2.2-t2v", num_inference_steps=8)

        async def watch() -> None:
            fan = await fanout.attach(gw.address, job.id, 20)
            try:
                with pytest.raises(ResourceExhausted) as refused:
                    next(iter(client.watch(job.id)))
                assert "--max-streams" in refused.value.message
                assert refused.value.retry_after is not None
                assert all(w.status == "" for w in fan.watchers)  # the twenty still stream
            finally:
                await fan.close()

        asyncio.run(watch())
        assert next(iter(client.watch(job.id))).WhichOneof("kind") == "queued"  # room again
