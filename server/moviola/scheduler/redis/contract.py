"""What the Python side and the Lua scripts agree on, each defined once here and generated into Lua.

- **Arguments.** Every script takes the key prefix as ``ARGV[1]`` (``connection.Script`` puts it
  there). Each key a script touches is in its ``KEYS`` or named by ``K``, a Lua table generated
  from ``keys.LAYOUT`` and that prefix (``K.feed``, ``K.job(job_id)``, ``K.waiting(queue)``), so the
  scripts never spell a key's name, nor take one apart.
- **Replies.** A script that can refuse answers ``{code, ...}``, ``code`` a ``Reply``, which the
  scripts know as ``REPLY.<NAME>``; what follows the code is said on each member.
- **SUBMIT** takes one ``Submission`` as JSON (``ARGV[2]``, decoded with ``cjson.decode``) and the
  encoded request (``ARGV[3]``, stored as it is).
- The terminal states (``moviola.jobs``), the consumer groups and the feed's length (``keys``).

``LUA_HEADER`` is all of that as Lua, the first lines of every script (``lua_functions.PRELUDE``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from string import Formatter

from moviola.jobs import TERMINAL_STATES, Priority
from moviola.scheduler.redis import keys
from moviola.scheduler.redis.codec import as_dict


class Reply(enum.IntEnum):
    """What a script did: the first element of its reply (the scripts' ``REPLY.<NAME>``)."""

    #: As asked. SUBMIT: ``{DONE, job id, position, sequence}``; PUBLISH ``{DONE, last sequence,
    #: model}``; FINISH ``{DONE, last sequence}``; START, TAKE, TAKE_MATE ``{DONE, attempt, request,
    #: created_at, jobs waiting}`` (TAKE and TAKE_MATE add stream, entry id, job id); CANCEL: cancelled
    #: while queued; RELEASE: handed back.
    DONE = 1
    #: SUBMIT: the idempotency key's job, which exists already: ``{DUPLICATE, its id}``.
    DUPLICATE = 2
    #: SUBMIT: the model's queue is full: ``{QUEUE_FULL, jobs waiting}``.
    QUEUE_FULL = 3
    #: SUBMIT: the tenant is at its in-flight limit: ``{OVER_IN_FLIGHT, its jobs in flight}``.
    OVER_IN_FLIGHT = 4
    #: SUBMIT: the tenant is over its submit rate: ``{OVER_RATE, seconds until a submit passes}``.
    OVER_RATE = 5
    #: No such job (never was, or it expired).
    NO_JOB = 6
    #: The job has ended (START: ended before it could start, cancelled or past its start_by).
    FINISHED = 7
    #: The caller's attempt no longer owns the job (taken over, or its entry is another worker's).
    LEASE_LOST = 8
    #: START: the job has used up its attempts: ``{GAVE_UP, attempts}``; the caller dead-letters it.
    GAVE_UP = 9
    #: TAKE: nothing waits (the worker blocks on the wake stream); TAKE_MATE: no mate.
    NONE_WAITING = 10
    #: CANCEL: the job runs; its worker is asked to stop.
    STOP_ASKED = 11


@dataclass(frozen=True)
class Limits:
    """A tenant's limits as SUBMIT applies them (``quota.Limits``, the bucket's size worked out)."""

    #: Jobs queued or running at once; 0: no limit.
    in_flight: int
    #: Submits per second; 0: no limit.
    rate: float
    #: The token bucket's size.
    bucket: int
    #: Fair-share weight.
    weight: float


@dataclass(frozen=True)
class Submission:
    """SUBMIT's arguments (after the prefix): this as JSON in ``ARGV[2]``, the encoded request in
    ``ARGV[3]`` (stored as it is, kept out of the JSON so that Redis never parses an image).

    ``{"id": "9f…", "model": "m", "tenant": "acme", "created_at": "1733400000.12", "start_by": null,
    "batch": "…", "webhook": "", "webhook_events": "completed,failed", "idempotent": false,
    "max_depth": 64, "retention": 604800, "maxlen": 10000, "announce_limit": 1,
    "limits": {"in_flight": 0, "rate": 0.0, "bucket": 1, "weight": 1.0}}``

    The two times travel as the strings Python writes (``repr``), which the script stores as they
    are: a number decoded in Lua would be written back with 17 digits (``1733400000.1199999``).
    """

    #: The new job's id.
    id: str
    model: str
    tenant: str
    #: Unix seconds (the gateway's clock): the job's creation time, its score in the tenant's index.
    created_at: float
    #: Unix seconds after which the job fails unless started; None: no deadline.
    start_by: float | None
    #: ``JobRequest.batch_key()``: jobs that may run in one batch share it.
    batch: str
    #: The webhook URL ('' for none) and the event types it wants, comma-separated.
    webhook: str
    webhook_events: str
    #: Whether ``KEYS[6]`` is the request's own idempotency key (else a placeholder, untouched).
    idempotent: bool
    #: Jobs waiting for the model past which the submit is refused.
    max_depth: int
    #: Seconds a finished job (and its idempotency key, and the tenant's index) is kept.
    retention: int
    #: Events kept per job.
    maxlen: int
    #: Waiting jobs told their new position at once (``Tuning.announce_limit``).
    announce_limit: int
    limits: Limits

    def encode(self) -> str:
        data = as_dict(self)
        data["created_at"] = repr(self.created_at)
        data["start_by"] = None if self.start_by is None else repr(self.start_by)
        return json.dumps(data, separators=(",", ":"))


def _lua_string(text: str) -> str:
    if any(c in text for c in "'\\\n"):
        raise ValueError(f"not a plain Lua string: {text!r}")
    return f"'{text}'"


def _lua_name(name: str) -> str:
    """``P .. 'job:' .. job_id``: a key's name in Lua, from its ``keys.LAYOUT`` entry."""
    parts = ["P"]
    for literal, field, _, _ in Formatter().parse(keys.LAYOUT[name]):
        if literal:
            parts.append(_lua_string(literal))
        if field:
            parts.append(field)
    return " .. ".join(parts)


def lua_keys() -> str:
    """The scripts' ``K``: every key of ``keys.LAYOUT`` named from the prefix ``P`` (``ARGV[1]``)."""
    fixed = [name for name in keys.LAYOUT if not keys.fields_of(name)]
    lines = ["local K = {" + ", ".join(f"{name} = {_lua_name(name)}" for name in fixed) + "}"]
    for name in keys.LAYOUT:
        if fields := keys.fields_of(name):
            lines.append(f"function K.{name}({', '.join(fields)}) return {_lua_name(name)} end")
    for name, suffix in keys.QUEUE_PARTS.items():
        lines.append(f"function K.{name}(queue) return queue .. {_lua_string(suffix)} end")
    return "\n".join(lines) + "\n"


def _lua_table(entries: dict[str, str]) -> str:
    return "{" + ", ".join(f"{name} = {value}" for name, value in entries.items()) + "}"


_TERMINAL = {f"['{s.value}']": "true" for s in sorted(TERMINAL_STATES, key=lambda s: s.value)}

#: The first lines of every script: the contract above, in Lua.
LUA_HEADER = (
    "-- Generated from moviola.scheduler.redis.contract, keys and moviola.jobs.\n"
    + f"local FEED_LENGTH = {keys.FEED_LENGTH}\n"
    + f"local HANDED_BACK_IDLE = {keys.HANDED_BACK_IDLE_MS}\n"
    + f"local GROUP = {_lua_string(keys.GROUP)}\n"
    + f"local BACKLOG_GROUP = {_lua_string(keys.BACKLOG_GROUP)}\n"
    + f"local INTERACTIVE, BATCH = '{Priority.INTERACTIVE.name.lower()}', '{Priority.BATCH.name.lower()}'\n"
    + f"local TERMINAL = {_lua_table(_TERMINAL)}\n"
    + f"local REPLY = {_lua_table({r.name: str(r.value) for r in Reply})}\n"
    + "local P = ARGV[1]  -- the key prefix\n"
    + lua_keys()
)
