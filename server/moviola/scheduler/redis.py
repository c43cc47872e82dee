"""The Redis Streams job queue: many stateless gateways, one worker per GPU replica.

Each model has two queue streams (interactive, batch) read by one consumer
group; a worker reads only when it is free, which is the backpressure towards
the GPUs. A delivered entry stays in the group's pending list until the
worker acknowledges it, and the worker renews it (``XCLAIM ... JUSTID``) while
it runs: that is its lease. Entries whose lease ran out (the worker died) are
taken over with ``XAUTOCLAIM`` and run again from the start; after
``max_attempts`` a job goes to the dead-letter stream instead.

Every job has a hash (request, state, counters) and an event stream whose IDs
are the events' sequence numbers, so any gateway can serve ``WatchJob`` and
resume after any sequence; live events reach a gateway's watchers through its
one reader of the shared feed (``feed``). State changes are Lua scripts
(``redis_lua``).
Redis errors become ``Unavailable`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from moviola.errors import JobNotFound, LeaseLost, ResourceExhausted, Unavailable
from moviola.jobs import (
    TERMINAL_KINDS,
    Cancelled,
    Completed,
    EventKind,
    Failed,
    FailureCode,
    JobEvent,
    JobRecord,
    JobState,
    Priority,
    Queued,
    Started,
)
from moviola.scheduler import keys, redis_lua
from moviola.scheduler.base import Assignment, DeadLetter
from moviola.scheduler.codec import decode_kind, decode_request, encode_kind, encode_request
from moviola.scheduler.feed import Delivery, EventFeed

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_STATES: dict[type[Any], str] = {
    Queued: "queued",
    Started: "running",
    Completed: "completed",
    Failed: "failed",
    Cancelled: "cancelled",
}


@dataclass(frozen=True)
class RedisQueueConfig:
    url: str
    #: Jobs waiting per model before submits get RESOURCE_EXHAUSTED.
    max_depth: int = 64
    #: Seconds a finished job and its events are kept.
    retention: float = 24 * 3600
    #: Events kept per job (older ones are trimmed).
    max_events: int = 10_000
    #: Seconds without renewal after which a running job is taken over by another worker.
    lease: float = 30.0
    #: Runs of one job (the first included) before it goes to the dead-letter stream.
    max_attempts: int = 3
    #: A batch job waiting longer than this starts ahead of interactive jobs.
    batch_max_wait: float = 300.0
    #: How long a free worker blocks on Redis before checking for abandoned jobs again.
    poll: float = 1.0
    #: Queue positions up to this one are updated on every move; those further back within a second.
    announce_limit: int = 1


#: Errors that mean Redis cannot be reached (as opposed to Redis answering with an error).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _unavailable(exc: BaseException) -> Unavailable:
    return Unavailable(f"the job store (Redis) is unreachable: {exc}", retry_after=1.0)


def _translated(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise _unavailable(exc) from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encoded(kinds: Sequence[EventKind]) -> list[str]:
    """Events as the scripts take them: each kind's JSON, then the state it implies ('' for none)."""
    return [part for kind in kinds for part in (encode_kind(kind), _STATES.get(type(kind), ""))]


def _event(job_id: str, model: str, sequence: int, fields: dict[bytes, bytes]) -> JobEvent:
    return JobEvent(job_id, sequence, float(fields[b"t"]), model, decode_kind(fields[b"k"]))


def _msg_age(msg_id: str) -> float:
    """Seconds since an auto-generated stream ID (``<ms>-<n>``) was created."""
    return time.time() - int(msg_id.split("-")[0]) / 1000


class RedisJobQueue:
    def __init__(self, config: RedisQueueConfig, *, consumer: str = "") -> None:
        self.config = config
        self.consumer = consumer or f"worker-{uuid.uuid4().hex[:8]}"
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            config.url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=1.0,
            health_check_interval=10,
        )
        self._submit = self.redis.register_script(redis_lua.SUBMIT)
        self._publish = self.redis.register_script(redis_lua.PUBLISH)
        self._start = self.redis.register_script(redis_lua.START)
        self._cancel = self.redis.register_script(redis_lua.CANCEL)
        self._release = self.redis.register_script(redis_lua.RELEASE)
        self._announce = self.redis.register_script(redis_lua.ANNOUNCE)
        self._waiting = self.redis.register_script(redis_lua.WAITING)
        self._renew_lease = self.redis.register_script(redis_lua.RENEW)
        self._finish = self.redis.register_script(redis_lua.FINISH)
        self._take = self.redis.register_script(redis_lua.TAKE)
        self._leases: dict[str, asyncio.Task[None]] = {}
        self._last_heartbeat = self._last_group_check = self._last_reclaim = float("-inf")
        self._last_full_announce = self._last_batch_check = float("-inf")
        self._owed_announce: asyncio.Task[None] | None = None
        self._feed = EventFeed(self.redis, block=config.poll)
        self._run_seconds: dict[str, float] = {}

    async def close(self) -> None:
        await self._feed.close()
        for task in [*self._leases.values(), self._owed_announce]:
            if task is not None:
                task.cancel()
        await self.redis.aclose()

    @_translated
    async def ping(self) -> None:
        await self.redis.ping()

    def _args(self) -> tuple[float, int, int]:
        return time.time(), self.config.max_events, int(self.config.retention)

    # Gateway side.

    @_translated
    async def submit(self, request: Any) -> tuple[JobRecord, bool]:
        job_id = uuid.uuid4().hex
        key = request.idempotency_key
        now, maxlen, retention = self._args()
        result = await self._submit(
            keys=[
                keys.job(job_id),
                keys.events(job_id),
                keys.queue(request.model, request.priority),
                keys.queue(request.model, Priority.INTERACTIVE),
                keys.queue(request.model, Priority.BATCH),
                keys.idempotency(key or "-"),
            ],
            args=[
                job_id,
                encode_request(request),
                now,
                request.model,
                self.config.max_depth,
                retention,
                maxlen,
                keys.GROUP,
                "1" if key else "0",
                keys.PREFIX,
                self.config.announce_limit,
            ],
        )
        status, value = int(result[0]), _text(result[1])
        if status == -1:
            raise ResourceExhausted(
                f"the queue of model {request.model} is full ({value} jobs waiting); retry later",
                retry_after=await self._retry_hint(request.model, int(value)),
            )
        if status == 0:
            return await self.get(value), False
        position, sequence = int(result[2]), int(result[3])
        record = JobRecord(id=job_id, request=request, created_at=now)
        return replace(record, queue_position=position, last_sequence=sequence), True

    @_translated
    async def get(self, job_id: str) -> JobRecord:
        fields = await self.redis.hgetall(keys.job(job_id))
        if not fields:
            raise JobNotFound(job_id)
        data = {_text(k): v for k, v in fields.items()}
        record = JobRecord(
            id=job_id, request=decode_request(data["request"]), created_at=float(data["created_at"])
        )
        for event in await self._events(job_id, 0, count=None, model=_text(data["model"])):
            record = record.apply(event)
        return record

    async def _events(self, job_id: str, after: int, *, count: int | None, model: str) -> list[JobEvent]:
        entries = await self.redis.xrange(keys.events(job_id), f"({after}-0", "+", count=count)
        return [
            _event(job_id, model, int(_text(entry_id).split("-")[0]), fields) for entry_id, fields in entries
        ]

    async def watch(
        self, job_id: str, after_sequence: int = 0, *, model: str = ""
    ) -> AsyncIterator[JobEvent]:
        after = after_sequence
        model = model or await self._model_of(job_id)
        async with self._feed.subscribe(job_id, wait=self.config.poll) as inbox:
            events, finished = await self._read_stream(job_id, after, model)
            while True:
                for event in events:
                    after = event.sequence
                    yield event
                    if isinstance(event.kind, TERMINAL_KINDS):
                        return
                if finished:
                    return
                events, finished = await self._next_events(job_id, after, model, inbox)

    @_translated
    async def _model_of(self, job_id: str) -> str:
        model = await self.redis.hget(keys.job(job_id), "model")
        if model is None:
            raise JobNotFound(job_id)
        return _text(model)

    async def _next_events(
        self, job_id: str, after: int, model: str, inbox: asyncio.Queue[Delivery]
    ) -> tuple[list[JobEvent], bool]:
        """The events after ``after`` from the feed, if it has them all, else from the job's stream."""
        try:
            async with asyncio.timeout(self.config.poll):
                deliveries = [await inbox.get()]
        except TimeoutError:  # quiet: is the job still there, or did the feed miss its end?
            return await self._read_stream(job_id, after, model)
        while not inbox.empty():
            deliveries.append(inbox.get_nowait())
        events = []
        for delivery in deliveries:
            if delivery is None:  # the feed's reader reconnected
                return await self._read_stream(job_id, after, model)
            sequence, fields = delivery
            if sequence <= after:
                continue  # read from the stream already
            if sequence != after + 1:  # the feed skipped some
                return await self._read_stream(job_id, after, model)
            events.append(_event(job_id, model, sequence, fields))
            after = sequence
        return events, False

    @_translated
    async def _read_stream(self, job_id: str, after: int, model: str) -> tuple[list[JobEvent], bool]:
        """Events after ``after`` from the job's own stream, and whether none will ever follow."""
        events = await self._events(job_id, after, count=100, model=model)
        if events:
            return events, False
        state, last = await self.redis.hmget(keys.job(job_id), ["state", "seq"])
        if state is None:
            raise JobNotFound(job_id)  # expired while watched
        return [], _text(state) in ("completed", "failed", "cancelled") and int(last) <= after

    @_translated
    async def cancel(self, job_id: str) -> JobRecord:
        model = await self.redis.hget(keys.job(job_id), "model")
        if model is None:
            raise JobNotFound(job_id)
        now, maxlen, retention = self._args()
        await self._cancel(
            keys=[keys.job(job_id), keys.events(job_id), *self._queues(_text(model))],
            args=[now, maxlen, retention, keys.GROUP, keys.PREFIX],
        )
        return await self.get(job_id)

    @_translated
    async def estimate_wait(self, model: str) -> float | None:
        """Seconds until a job submitted now would start, or None while nothing has run yet."""
        waiting = sum((await self.waiting(model)).values())
        return await self._retry_hint(model, waiting + 1, default=None)

    async def _retry_hint(self, model: str, jobs_ahead: int, default: float | None = 1.0) -> float | None:
        run = await self.redis.hget(keys.stats(model), "run_seconds")
        if run is None:
            return default
        live = max(1, len(await self.live_workers(model)))
        return float(run) * jobs_ahead / live

    @_translated
    async def waiting(self, model: str) -> dict[Priority, int]:
        """Jobs waiting per priority: handed back by a stopping worker, or not yet read by any."""
        interactive, batch = await self._waiting(keys=self._queues(model), args=[keys.GROUP])
        return {Priority.INTERACTIVE: int(interactive), Priority.BATCH: int(batch)}

    @_translated
    async def live_workers(self, model: str) -> list[str]:
        since = time.time() - self.config.lease
        return [_text(m) for m in await self.redis.zrangebyscore(keys.workers(model), since, "+inf")]

    def _queues(self, model: str) -> list[str]:
        return [keys.queue(model, Priority.INTERACTIVE), keys.queue(model, Priority.BATCH)]

    # Dead letters (operators).

    @_translated
    async def dead_letters(self) -> list[DeadLetter]:
        entries = await self.redis.xrange(keys.DEAD_LETTERS)
        return [
            DeadLetter(
                job_id=_text(f[b"job"]),
                model=_text(f[b"model"]),
                error=_text(f[b"error"]),
                attempts=int(f[b"attempts"]),
                time=float(f[b"time"]),
            )
            for _, f in entries
        ]

    @_translated
    async def requeue(self, job_id: str) -> JobRecord:
        """Submit a dead-lettered job's request again, as a new job; drop the dead letter."""
        entries = [e for e in await self.redis.xrange(keys.DEAD_LETTERS) if _text(e[1][b"job"]) == job_id]
        if not entries:
            raise JobNotFound(job_id)
        request = await self.redis.hget(keys.job(job_id), "request")
        if request is None:
            raise JobNotFound(job_id)
        record, _ = await self.submit(replace(decode_request(request), idempotency_key=""))
        await self.redis.xdel(keys.DEAD_LETTERS, *[e[0] for e in entries])
        return record

    # Worker side.

    @_translated
    async def publish(self, job_id: str, kind: EventKind, *, attempt: int | None = None) -> JobEvent:
        now, seq, model = await self._publish_batch(job_id, [kind], attempt)
        return JobEvent(job_id, seq, now, model, kind)

    @_translated
    async def publish_many(self, job_id: str, kinds: list[EventKind], *, attempt: int | None = None) -> None:
        await self._publish_batch(job_id, kinds, attempt)

    async def _publish_batch(
        self, job_id: str, kinds: list[EventKind], attempt: int | None
    ) -> tuple[float, int, str]:
        """Append ``kinds`` in one script call; (time, the last one's sequence number, the job's model)."""
        now, maxlen, retention = self._args()
        expected = "" if attempt is None else str(attempt)
        seq, model = await self._publish(
            keys=[keys.job(job_id), keys.events(job_id)],
            args=[now, maxlen, retention, expected, *_encoded(kinds)],
        )
        if seq == -1:
            raise JobNotFound(job_id)
        if seq in (-2, -3):
            raise LeaseLost(f"job {job_id} is finished or was taken over by another worker")
        return now, int(seq), _text(model)

    async def take(self, model: str) -> Assignment:
        """Wait for the next job, reclaiming abandoned ones first; Redis outages are waited out."""
        backoff = 0.1
        while True:
            try:
                assignment = await self._take_once(model)
                backoff = 0.1
            except _UNREACHABLE as exc:
                log.warning("Redis unreachable (%s); retrying in %.1fs", exc, backoff)
            except ResponseError as exc:
                # NOGROUP: Redis lost its data (restarted without persistence); create the groups again.
                log.warning("Redis answered %s; recreating the consumer groups", exc)
                self._last_group_check = float("-inf")
            else:
                if assignment is not None:
                    return assignment
                continue
            await asyncio.sleep(backoff)  # back off before asking a failing Redis again
            backoff = min(backoff * 2, 5.0)

    async def _take_once(self, model: str) -> Assignment | None:
        now = time.monotonic()
        if now - self._last_heartbeat > 1.0:
            await self.redis.zadd(keys.workers(model), {self.consumer: time.time()})
            self._last_heartbeat = now
        interactive, batch = self._queues(model)
        if now - self._last_group_check > self.config.lease:  # also recreates groups lost with Redis
            for stream in (interactive, batch):
                with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                    await self.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
            self._last_group_check = now
        if now - self._last_reclaim > min(1.0, self.config.lease / 3):
            self._last_reclaim = now
            if (assignment := await self._reclaim(model)) is not None:
                return assignment
        return await self._read(model)

    async def _reclaim(self, model: str) -> Assignment | None:
        """Take over one job whose worker stopped renewing its lease."""
        for stream in self._queues(model):
            claimed = await self.redis.xautoclaim(
                stream, keys.GROUP, self.consumer, int(self.config.lease * 1000), "0-0", count=1
            )
            for msg_id, fields in claimed[1]:
                if fields:
                    job_id = _text(fields[b"job"])
                    if await self.redis.hget(keys.job(job_id), "state") == b"running":  # not handed back
                        log.warning("taking over job %s: its worker stopped renewing its lease", job_id)
                        await self.redis.hset(keys.job(job_id), "error", "its worker stopped (lease expired)")
                    return await self._begin(model, stream, _text(msg_id), job_id)
            for msg_id in claimed[2] if len(claimed) > 2 else []:
                await self.redis.xack(stream, keys.GROUP, msg_id)  # deleted while pending (cancelled)
        return None

    async def _read(self, model: str) -> Assignment | None:
        interactive, batch = self._queues(model)
        order = [interactive, batch]
        if time.monotonic() - self._last_batch_check > 1.0:  # is the oldest batch job overdue?
            self._last_batch_check = time.monotonic()
            head = await self.redis.xrange(batch, "-", "+", count=1)
            if head and _msg_age(_text(head[0][0])) > self.config.batch_max_wait:
                order.reverse()
        reply = await self._take(keys=[interactive, batch, *order], args=self._start_args())
        if reply:
            *started, stream, msg_id, job_id = reply
            return await self._started(model, _text(stream), _text(msg_id), _text(job_id), started)
        # Block on interactive work only: a waiting batch job is found on the next round.
        blocked = await self.redis.xreadgroup(
            keys.GROUP, self.consumer, {interactive: ">"}, count=1, block=int(self.config.poll * 1000)
        )
        if blocked and blocked[0][1]:
            msg_id, fields = blocked[0][1][0]
            return await self._begin(model, interactive, _text(msg_id), _text(fields[b"job"]))
        return None

    def _start_args(self) -> list[Any]:
        now, maxlen, retention = self._args()
        return [
            self.consumer,
            now,
            maxlen,
            retention,
            self.config.max_attempts,
            keys.GROUP,
            keys.PREFIX,
            self.config.announce_limit,
        ]

    def _announce_soon(self, model: str) -> None:
        """Tell every waiting job its position, at most once a second: a start told only the first few."""
        if self._owed_announce is None or self._owed_announce.done():
            self._owed_announce = asyncio.create_task(self._announce_all(model), name=f"announce-{model}")

    async def _announce_all(self, model: str) -> None:
        await asyncio.sleep(max(0.0, self._last_full_announce + 1.0 - time.monotonic()))
        self._last_full_announce = time.monotonic()
        now, maxlen, retention = self._args()
        try:
            await self._announce(
                keys=self._queues(model), args=[now, maxlen, retention, keys.GROUP, keys.PREFIX]
            )
        except RedisError as exc:  # positions are informational; the next start tries again
            log.warning("could not announce queue positions of %s: %s", model, exc)

    async def _begin(self, model: str, stream: str, msg_id: str, job_id: str) -> Assignment | None:
        reply = await self._start(
            keys=[keys.job(job_id), keys.events(job_id), *self._queues(model)], args=self._start_args()
        )
        return await self._started(model, stream, msg_id, job_id, reply)

    async def _started(
        self, model: str, stream: str, msg_id: str, job_id: str, reply: list[Any]
    ) -> Assignment | None:
        """Act on the START script's reply: an assignment, or the entry acknowledged (and dead-lettered)."""
        status, attempts = int(reply[0]), int(reply[1])
        if status == -2:  # cancelled or finished meanwhile
            await self._ack(stream, msg_id)
            return None
        if status == -4:
            await self._dead_letter(job_id, model, attempts)
            await self._ack(stream, msg_id)
            return None
        if int(reply[4]) > self.config.announce_limit:
            self._announce_soon(model)
        assignment = Assignment(
            job_id=job_id,
            request=decode_request(reply[2]),
            created_at=float(reply[3]),
            attempt=attempts,
            lease=(stream, msg_id),
        )
        self._leases[job_id] = asyncio.create_task(
            self._renew(model, job_id, stream, msg_id), name=f"lease-{job_id}"
        )
        return assignment

    async def _dead_letter(self, job_id: str, model: str, attempts: int) -> None:
        error = _text(await self.redis.hget(keys.job(job_id), "error") or b"unknown")
        message = f"gave up after {attempts} attempts; last error: {error}"
        log.error("job %s moved to the dead-letter stream: %s", job_id, message)
        await self.redis.xadd(
            keys.DEAD_LETTERS,
            {"job": job_id, "model": model, "error": error, "attempts": attempts, "time": time.time()},
        )
        with contextlib.suppress(LeaseLost):
            await self.publish(job_id, Failed(code=FailureCode.DEAD_LETTERED, message=message))

    async def _renew(self, model: str, job_id: str, stream: str, msg_id: str) -> None:
        interval = self.config.lease / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew_lease(
                    keys=[keys.job(job_id), stream, keys.workers(model)],
                    args=[keys.GROUP, self.consumer, msg_id, time.time()],
                )
            except RedisError as exc:
                log.warning("could not renew the lease of %s: %s", msg_id, exc)

    async def _ack(self, stream: str, msg_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.xack(stream, keys.GROUP, msg_id).xdel(stream, msg_id).execute()

    async def _stop_lease(self, job_id: str) -> None:
        """Stop renewing, and wait until no renewal can still reach Redis after what comes next."""
        task = self._leases.pop(job_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @_translated
    async def finish(
        self,
        assignment: Assignment,
        kind: EventKind,
        run_seconds: float,
        *,
        preceding: Sequence[EventKind] = (),
    ) -> None:
        """Publish the events not yet published and the terminal one, and acknowledge the entry, in one step."""
        await self._stop_lease(assignment.job_id)
        stream, msg_id = assignment.lease or ("", "")
        model, job_id = assignment.request.model, assignment.job_id
        old = self._run_seconds.get(model)
        self._run_seconds[model] = average = run_seconds if old is None else 0.8 * old + 0.2 * run_seconds
        now, maxlen, retention = self._args()
        ack = [keys.GROUP, msg_id, average]
        seq = await self._finish(
            keys=[keys.job(job_id), keys.events(job_id), stream, keys.stats(model)],
            args=[now, maxlen, retention, assignment.attempt, *ack, *_encoded([*preceding, kind])],
        )
        if seq == -1:
            raise JobNotFound(job_id)
        if seq == -2:
            raise LeaseLost(f"job {job_id} is finished or was taken over by another worker")

    async def release(self, assignment: Assignment) -> bool:
        """Give a running job back to the queue (the worker is stopping): the next free worker starts it."""
        await self._stop_lease(assignment.job_id)
        stream, msg_id = assignment.lease or ("", "")
        now, maxlen, retention = self._args()
        try:
            job_id, queues = assignment.job_id, self._queues(assignment.request.model)
            entry = [keys.GROUP, self.consumer, msg_id, keys.PREFIX]
            released = await self._release(
                keys=[keys.job(job_id), keys.events(job_id), stream, *queues],
                args=[now, maxlen, retention, assignment.attempt, *entry],
            )
            return bool(released)
        except RedisError as exc:
            log.warning("could not hand job %s back (%s); its lease will expire", assignment.job_id, exc)
            return True

    @_translated
    async def wait_cancel_requested(self, job_id: str) -> None:
        while True:  # polled only while the job runs: one cheap HGET per 100 ms
            await asyncio.sleep(0.1)
            if await self.redis.hget(keys.job(job_id), "cancel") == b"1":
                return

    async def leave(self, model: str) -> None:
        """Remove this worker from the live set (clean shutdown)."""
        with contextlib.suppress(RedisError):
            await self.redis.zrem(keys.workers(model), self.consumer)


__all__ = ["JobState", "RedisJobQueue", "RedisQueueConfig"]
