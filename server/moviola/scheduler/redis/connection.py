"""What every part of the Redis queue shares: the connection (client, keys, scripts), and the
translation of Redis errors.

Redis errors become ``Unavailable`` here and nowhere else.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from moviola.errors import Unavailable
from moviola.jobs import Cancelled, Completed, EventKind, Failed, JobEvent, Priority, Queued, Started
from moviola.scheduler.base import Assignment
from moviola.scheduler.redis import keys
from moviola.scheduler.redis import lua as redis_lua
from moviola.scheduler.redis.codec import decode_kind, encode_kind
from moviola.scheduler.redis.pool import WaitingPool
from moviola.settings import QueueSettings

P = ParamSpec("P")
R = TypeVar("R")

STATES: dict[type[Any], str] = {
    Queued: "queued",
    Started: "running",
    Completed: "completed",
    Failed: "failed",
    Cancelled: "cancelled",
}


@dataclass(frozen=True)
class Tuning:
    """Knobs of the Redis queue that operators need not set (the rest is ``QueueSettings``)."""

    #: Events kept per job (older ones are trimmed).
    max_events: int = 10_000
    #: How long a free worker blocks on Redis before checking for abandoned jobs again.
    poll: float = 1.0
    #: Queue positions up to this one are updated on every move; those further back within a second.
    announce_limit: int = 1
    #: Seconds between a worker's heartbeats (while free, and while it runs a job).
    heartbeat: float = 2.0
    #: A worker whose last heartbeat is older than this is not counted as live.
    live_window: float = 15.0
    #: Seconds between a free worker's looks for consumers of workers gone without leaving (``TIDY``).
    tidy_every: float = 300.0
    #: A consumer that holds no lease and has not read for this many seconds is forgotten.
    tidy_idle: float = 3600.0


#: Errors that mean Redis cannot be reached (as opposed to Redis answering with an error).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, AuthenticationError):
        return Unavailable(
            f"the job store (Redis) refused the user or password of the Redis URL: {exc}", retry_after=5.0
        )
    return Unavailable(f"the job store (Redis) is unreachable: {exc}", retry_after=1.0)


def redacted(url: str | None) -> str:
    """A Redis URL fit for logs: its password replaced by ``***``."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    login = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=login + parts.netloc.rpartition("@")[2]))


def translated(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encoded_kinds(kinds: Sequence[EventKind]) -> list[str]:
    """Events as the scripts take them: each kind's JSON, then the state it implies ('' for none)."""
    return [part for kind in kinds for part in (encode_kind(kind), STATES.get(type(kind), ""))]


def to_event(job_id: str, model: str, sequence: int, fields: dict[bytes, bytes]) -> JobEvent:
    return JobEvent(job_id, sequence, float(fields[b"t"]), model, decode_kind(fields[b"k"]))


def ticket_of(assignment: Assignment) -> tuple[str, str]:
    """The queue stream and entry ID that this queue's ``take`` put in the assignment."""
    ticket = assignment.ticket
    if not (isinstance(ticket, tuple) and len(ticket) == 2):
        raise TypeError(f"not an assignment of a Redis queue: {ticket!r}")
    return str(ticket[0]), str(ticket[1])


class Script:
    """A script, called with its KEYS and the ARGV after the prefix (which it puts first).

    It is sent as ``EVALSHA`` straight away, and loaded only when Redis answers that it does not know
    it (a restarted Redis): redis-py's ``Script`` does the same with an import and type checks per call.
    """

    def __init__(self, redis: aioredis.Redis, source: str, prefix: str) -> None:
        self._redis, self._source, self._prefix = redis, source, prefix
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._execute = cast(Callable[..., Awaitable[Any]], redis.execute_command)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", self._sha, len(keys), *keys, self._prefix, *args)
        try:
            return await self._execute(*command)
        except NoScriptError:
            await self._redis.script_load(self._source)
            return await self._execute(*command)


class Scripts:
    """Every script of ``lua``, registered on one client for one prefix."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        def script(source: str) -> Script:
            return Script(redis, source, prefix)

        self.submit = script(redis_lua.SUBMIT)
        self.publish = script(redis_lua.PUBLISH)
        self.start = script(redis_lua.START)
        self.cancel = script(redis_lua.CANCEL)
        self.release = script(redis_lua.RELEASE)
        self.announce = script(redis_lua.ANNOUNCE)
        self.waiting = script(redis_lua.WAITING)
        self.estimate = script(redis_lua.ESTIMATE)
        self.renew = script(redis_lua.RENEW)
        self.finish = script(redis_lua.FINISH)
        self.take = script(redis_lua.TAKE)
        self.take_mate = script(redis_lua.TAKE_MATE)
        self.reclaim = script(redis_lua.RECLAIM)
        self.tidy = script(redis_lua.TIDY)
        self.expire = script(redis_lua.EXPIRE)
        self.claim_webhooks = script(redis_lua.CLAIM_WEBHOOKS)


class Connection:
    """One process's Redis: the client, the key names, the scripts; handed to the parts it builds.

    A gateway builds a ``front.RedisFront`` on it, a worker a ``claims.RedisClaims`` (and a front for
    the parts of its long videos). The parts close what they started; the connection's owner closes it.
    ``consumer`` is the process's name in the consumer groups (a worker's name; every gateway's "gateway").
    """

    def __init__(
        self,
        settings: QueueSettings,
        *,
        consumer: str = "",
        tuning: Tuning | None = None,
        on_pool_wait: Callable[[float], None] | None = None,
    ) -> None:
        """``on_pool_wait``: told the seconds of each wait for a free connection (``pool.WaitingPool``)."""
        if settings.redis_url is None:
            raise ValueError("the Redis queue needs redis_url")
        self.settings = settings
        self.keys = keys.Keys(settings.redis_prefix)
        self.tuning = tuning or Tuning()
        self.consumer = consumer or f"worker-{uuid.uuid4().hex[:8]}"
        # A bounded pool: thousands of watchers or callers share ``redis_max_connections`` connections,
        # waiting up to ``redis_pool_timeout`` for one, instead of opening one per concurrent command.
        pool = WaitingPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout,
            on_wait=on_pool_wait,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=1.0,
            health_check_interval=10,
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self.scripts = Scripts(self.redis, self.keys.prefix)

    async def close(self) -> None:
        await self.redis.aclose()

    @translated
    async def ping(self) -> None:
        await self.redis.ping()

    def clock(self) -> tuple[float, int, int]:
        """What every event needs: the time now, the events kept per job, the seconds a finished job is kept."""
        return time.time(), self.tuning.max_events, int(self.settings.record_retention)

    def queues(self, model: str) -> list[str]:
        """The model's queue streams, interactive first: the KEYS of most scripts."""
        return [self.keys.queue(model, Priority.INTERACTIVE), self.keys.queue(model, Priority.BATCH)]
