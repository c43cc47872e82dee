"""Redis as a security reviewer wants it: TLS (``rediss://``), an ACL user with a password, key prefixes.

A real redis-server serving only TLS with certificates the test makes, whose only user is an ACL
user; two deployments with their own ``--redis-prefix`` on one Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fakes import ScriptedPipeline
from harness.servers import RedisServer
from pki import make_pki

from moviola.client import AsyncClient, NotFound, Unavailable
from moviola.runtime.gateway import GatewayServer
from moviola.runtime.worker import WorkerProcess
from moviola.scheduler.redis.connection import redacted
from moviola.settings import Settings
from moviola.v1 import job_pb2 as pb


@contextlib.asynccontextmanager
async def deployment(
    url: str, tmp_path: Path, cache_dir: Path, *, worker: bool = True, **options: Any
) -> AsyncIterator[AsyncClient]:
    """A gateway (and a worker, in-process, around a scripted pipeline) on ``url``; a client of the gateway."""
    settings = Settings.of(
        port=0, data_dir=tmp_path, cache_dir=cache_dir, redis_url=url, accept_without_workers=True, **options
    )
    runner = WorkerProcess(settings, loader=lambda s, _: ScriptedPipeline()) if worker else None
    if runner is not None:
        await runner.start()
    try:
        async with GatewayServer(settings) as gateway, AsyncClient(f"127.0.0.1:{gateway.port}") as client:
            yield client
    finally:
        if runner is not None:
            await runner.drain(5)


async def test_two_deployments_share_one_redis_without_seeing_each_other(
    redis_url: str, tmp_path: Path, cache_dir: Path
) -> None:
    async with (
        deployment(redis_url, tmp_path / "a", cache_dir, redis_prefix="blue:") as blue,
        deployment(
            redis_url, tmp_path / "b", cache_dir, worker=False, redis_prefix="green:moviola:"
        ) as green,
    ):
        done = [e async for e in blue.generate("blue's", num_inference_steps=2)]
        assert done[-1].WhichOneof("kind") == "completed"
        waiting = await green.submit("green's: no green worker runs it", num_inference_steps=2)
        assert (await green.get(waiting.id)).state == pb.JOB_STATE_QUEUED  # blue's worker did not take it
        with pytest.raises(NotFound):
            await green.get(done[-1].job_id)
        with pytest.raises(NotFound):
            await blue.get(waiting.id)
    with redis.Redis.from_url(redis_url) as r:
        names = [k.decode() for k in r.keys("*")]
    assert any(n.startswith("blue:") for n in names)
    assert any(n.startswith("green:moviola:") for n in names)
    assert all(n.startswith(("blue:", "green:moviola:")) for n in names), names


def test_a_bad_prefix_is_refused_with_what_a_prefix_may_be() -> None:
    with pytest.raises(ValueError, match="ending with ':'"):
        Settings.of(redis_url="redis://127.0.0.1:1/0", redis_prefix="moviola*")


async def test_rediss_with_an_acl_user_runs_jobs_and_a_wrong_password_is_refused(
    tmp_path: Path, cache_dir: Path
) -> None:
    pki = make_pki(tmp_path)
    tls = (pki["server_cert"], pki["server_key"], pki["ca"])
    with RedisServer(tls=tls, acl=("moviola", "s3cret-pass")) as server:
        assert server.url.startswith("rediss://moviola:s3cret-pass@")
        async with deployment(server.url, tmp_path / "ok", cache_dir) as client:
            done = [e async for e in client.generate("over TLS", num_inference_steps=2)]
            assert done[-1].WhichOneof("kind") == "completed"
        plain = server.url.replace("rediss://", "redis://").partition("?")[0]
        wrong = server.url.replace("s3cret-pass", "wrong")
        for url, why in ((wrong, "refused the user or password"), (plain, "unreachable")):
            async with deployment(url, tmp_path / "bad", cache_dir, worker=False) as client:
                with pytest.raises(Unavailable) as refused:
                    await client.submit("never queued", num_inference_steps=2)
                assert why in refused.value.message
                assert "s3cret-pass" not in refused.value.message


def test_passwords_never_reach_the_logs() -> None:
    assert (
        redacted("rediss://moviola:s3cret@cache.example:6379/0")
        == "rediss://moviola:***@cache.example:6379/0"
    )
    assert redacted("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
