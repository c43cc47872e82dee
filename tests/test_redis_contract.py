"""The Lua contract (``scheduler/redis/contract.py``): codes, key names and SUBMIT's JSON are defined once."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import redis.asyncio as aioredis
from helpers import REQUEST
from redis_parts import redis_parts

from moviola.jobs import JobState, Priority
from moviola.scheduler.redis import keys, lua
from moviola.scheduler.redis.contract import LUA_HEADER, Limits, Reply, Submission

SCRIPTS: dict[str, str] = {name: getattr(lua, name) for name in lua.__all__}


def bodies() -> dict[str, str]:
    """Every script without the generated header: what people write."""
    return {name: source.removeprefix(LUA_HEADER) for name, source in SCRIPTS.items()}


def test_every_reply_a_script_gives_is_a_member_and_every_member_is_given() -> None:
    named = {name for source in SCRIPTS.values() for name in re.findall(r"REPLY\.(\w+)", source)}
    assert named == {reply.name for reply in Reply}


def test_no_script_spells_a_key_name_or_takes_one_apart() -> None:
    spelled = [template.split("{")[0] for template in keys.LAYOUT.values()] + list(keys.QUEUE_PARTS.values())
    for name, body in bodies().items():
        assert "string.match" not in body, name
        for part in spelled:
            assert f"'{part}" not in body, (name, part)


def test_every_script_starts_with_the_contract() -> None:
    assert all(source.startswith(LUA_HEADER) for source in SCRIPTS.values())


async def test_the_scripts_name_keys_as_python_does(redis_url: str) -> None:
    names = keys.Keys("other:")
    expected = [
        names.feed,
        names.in_flight,
        names.deadlines,
        names.webhooks_due,
        names.job("j1"),
        names.events("j1"),
        names.queue("m", Priority.BATCH),
        names.waiting("m", Priority.BATCH),
        names.fair("m", Priority.INTERACTIVE),
        names.wake("m"),
        names.webhook("j1.3"),
        names.idempotency("acme/k"),
    ]
    script = LUA_HEADER + (
        "return {K.feed, K.in_flight, K.deadlines, K.webhooks_due, K.job('j1'), K.events('j1'),"
        " K.queue('m', BATCH), K.waiting(K.queue('m', BATCH)), K.fair(K.queue('m', INTERACTIVE)),"
        " K.wake('m'), K.webhook('j1.3'), K.idempotency('acme/k')}"
    )
    async with aioredis.Redis.from_url(redis_url, decode_responses=True) as r:
        assert await r.eval(script, 0, "other:") == expected


def test_submits_documented_json_is_what_it_encodes() -> None:
    assert Submission.__doc__ is not None
    documented = json.loads(re.search(r"``(\{.*?\})``", Submission.__doc__, re.DOTALL)[1])  # type: ignore[index]
    assert set(documented) == {f.name for f in fields(Submission)}
    limits = Limits(**documented["limits"])
    submission = Submission(**(documented | {"created_at": 1.5, "limits": limits}))
    encoded = json.loads(submission.encode())
    assert encoded | {"created_at": documented["created_at"]} == documented | {"limits": encoded["limits"]}
    assert set(encoded["limits"]) == set(documented["limits"])
    assert encoded["created_at"] == "1.5"  # stored as Python writes it


async def test_scripts_run_again_after_redis_forgot_them(redis_url: str) -> None:
    parts = redis_parts(redis_url, "w1")
    try:
        first, _ = await parts.front.submit(REQUEST)
        async with aioredis.Redis.from_url(redis_url) as r:
            await r.script_flush()  # as a restarted Redis: EVALSHA answers NOSCRIPT
        second, created = await parts.front.submit(REQUEST)
        assert created
        assert second.id != first.id
        assert (await parts.claims.take("m")).job_id == first.id
        assert (await parts.front.get(second.id)).state is JobState.QUEUED
    finally:
        await parts.close()
