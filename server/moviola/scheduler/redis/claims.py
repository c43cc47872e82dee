"""The side of the Redis queue that workers use: take (claim) a job, publish its events, finish or hand it back.

A claim is a queue entry in the group's pending list; the worker renews it while
it runs, and the lease it claimed with is stored with the job, so a takeover
waits for that worker's lease, not the taker's. Built by the worker process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from moviola.errors import JobNotFound, LeaseLost, Unavailable
from moviola.jobs import Completed, EventKind, Failed, FailureCode, JobEvent, Priority
from moviola.scheduler import estimate
from moviola.scheduler.base import Assignment
from moviola.scheduler.redis import keys
from moviola.scheduler.redis.codec import decode_request
from moviola.scheduler.redis.connection import (
    UNREACHABLE,
    Connection,
    as_text,
    encoded_kinds,
    ticket_of,
    translated,
)
from moviola.scheduler.redis.contract import Reply

log = logging.getLogger(__name__)

#: Waiting jobs of each priority a batch looks through for mates (a mate may start ahead of others).
MATE_SCAN = 32


class RedisClaims:
    """What a worker uses (``WorkerQueue``), as ``connection.consumer``."""

    def __init__(self, connection: Connection) -> None:
        self.connection, self.consumer = connection, connection.consumer
        self.settings, self.tuning = connection.settings, connection.tuning
        self.redis, self.keys, self.scripts = connection.redis, connection.keys, connection.scripts
        self._leases: dict[str, asyncio.Task[None]] = {}
        self._last_heartbeat = self._last_group_check = self._last_reclaim = float("-inf")
        self._last_full_announce = self._last_batch_check = self._last_tidy = float("-inf")
        self._owed_announce: asyncio.Task[None] | None = None
        #: The last start left nothing waiting: the next take waits for a wake before its TAKE.
        self._wake_first = False

    async def close(self) -> None:
        """Stop renewing leases and announcing (the connection is its owner's to close)."""
        for task in [*self._leases.values(), self._owed_announce]:
            if task is not None:
                task.cancel()

    @translated
    async def publish(self, job_id: str, kind: EventKind, *, attempt: int | None = None) -> JobEvent:
        now, seq, model = await self._publish_batch(job_id, [kind], attempt)
        return JobEvent(job_id, seq, now, model, kind)

    @translated
    async def publish_many(self, job_id: str, kinds: list[EventKind], *, attempt: int | None = None) -> None:
        await self._publish_batch(job_id, kinds, attempt)

    async def _publish_batch(
        self, job_id: str, kinds: list[EventKind], attempt: int | None
    ) -> tuple[float, int, str]:
        """Append ``kinds`` in one script call; (time, the last one's sequence number, the job's model)."""
        now, maxlen, retention = self.connection.clock()
        expected = "" if attempt is None else str(attempt)
        reply = await self.scripts.publish(
            keys=[self.keys.job(job_id)],
            args=[job_id, now, maxlen, retention, expected, *encoded_kinds(kinds)],
        )
        _lease_held(Reply(reply[0]), job_id)
        return now, int(reply[1]), as_text(reply[2])

    async def take(self, model: str) -> Assignment:
        """Wait for the next job, reclaiming abandoned ones first; Redis outages are waited out."""
        backoff = 0.1
        while True:
            try:
                assignment = await self._take_once(model)
                backoff = 0.1
            except (*UNREACHABLE, Unavailable) as exc:
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

    @translated
    async def take_mate(self, model: str, batch_key: str) -> Assignment | None:
        """Start a waiting job with ``batch_key``, without waiting; None when none is near the queue's head."""
        if not batch_key:
            return None
        while True:
            reply = await self.scripts.take_mate(
                keys=self.connection.queues(model), args=[*self._start_args(), batch_key, MATE_SCAN]
            )
            if Reply(reply[0]) is Reply.NONE_WAITING:
                return None
            *started, stream, msg_id, job_id = reply
            assignment = await self._started(
                model, as_text(stream), as_text(msg_id), as_text(job_id), started
            )
            if assignment is not None:
                return assignment  # else it expired or was cancelled as it started: look again

    @translated
    async def heartbeat(self, model: str) -> None:
        """Say this worker is alive and serves ``model`` (gateways count it as a live worker)."""
        await self.redis.zadd(self.keys.workers(model), {self.consumer: time.time()})
        self._last_heartbeat = time.monotonic()

    async def _take_once(self, model: str) -> Assignment | None:
        now = time.monotonic()
        if now - self._last_heartbeat > self.tuning.heartbeat:
            await self.heartbeat(model)
        interactive, batch = self.connection.queues(model)
        if now - self._last_group_check > self.settings.lease:  # also recreates groups lost with Redis
            for stream, group, start in (
                (interactive, keys.GROUP, "0"),
                (batch, keys.GROUP, "0"),
                # The backlog group before the wakers: a wake stream exists only with it (``wake``).
                (self.keys.wake(model), keys.BACKLOG_GROUP, "$"),
                # At the end: a job queued before this is found by the TAKE that follows.
                (self.keys.wake(model), keys.WAKE_GROUP, "$"),
            ):
                with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
                    await self.redis.xgroup_create(stream, group, id=start, mkstream=True)
            self._last_group_check = now
        if now - self._last_tidy > self.tuning.tidy_every:
            self._last_tidy = now
            await self.tidy(model)
        if now - self._last_reclaim > min(1.0, self.settings.lease / 3):
            self._last_reclaim = now
            if (assignment := await self._reclaim(model)) is not None:
                return assignment
        return await self._read(model)

    async def tidy(self, model: str) -> int:
        """Forget the consumers of ``model``'s groups that workers gone without leaving left (``TIDY``);
        how many. Housekeeping: a Redis error waits for the next look."""
        streams, groups = (
            [*self.connection.queues(model), self.keys.wake(model)],
            [keys.GROUP] * 2 + [keys.WAKE_GROUP],
        )
        idle_ms = int(self.tuning.tidy_idle * 1000)
        try:
            gone = int(await self.scripts.tidy(keys=streams, args=[*groups, idle_ms, self.consumer]))
        except RedisError as exc:
            log.warning("could not look for consumers of gone workers of %s: %s", model, exc)
            return 0
        if gone:
            log.info("forgot %d consumers of %s's queues left by workers gone without leaving", gone, model)
        return gone

    async def _reclaim(self, model: str) -> Assignment | None:
        """Take over one job whose worker stopped renewing the lease it claimed it with (its ``--lease``)."""
        reply = await self.scripts.reclaim(
            keys=self.connection.queues(model), args=[self.consumer, int(self.settings.lease * 1000)]
        )
        if not reply:
            return None
        stream, msg_id, job_id = (as_text(part) for part in reply)
        if await self.redis.hget(self.keys.job(job_id), "state") == b"running":  # not handed back
            log.warning("taking over job %s: its worker stopped renewing its lease", job_id)
            await self.redis.hset(self.keys.job(job_id), "error", "its worker stopped (lease expired)")
        return await self._begin(model, stream, msg_id, job_id)

    async def _read(self, model: str) -> Assignment | None:
        if self._wake_first:
            # The last start left nothing waiting, so a TAKE now would most likely find nothing: wait
            # for the wake stream instead. A job queued since has an unread wake entry, which is read
            # at once; a poll that times out goes on to a TAKE, as after an error.
            self._wake_first = False
            if not await self._wait_for_wake(model):
                return None
        interactive, batch = self.connection.queues(model)
        order = [interactive, batch]
        if time.monotonic() - self._last_batch_check > 1.0:  # is the oldest batch job overdue?
            self._last_batch_check = time.monotonic()
            head = await self.redis.zrange(self.keys.waiting(model, Priority.BATCH), 0, 0)
            created = head and await self.redis.hget(self.keys.job(as_text(head[0])), "created_at")
            if created and time.time() - float(created) > self.settings.batch_max_wait:
                order.reverse()
        reply = await self.scripts.take(keys=[interactive, batch, *order], args=self._start_args())
        if Reply(reply[0]) is not Reply.NONE_WAITING:
            *started, stream, msg_id, job_id = reply
            return await self._started(model, as_text(stream), as_text(msg_id), as_text(job_id), started)
        await self._wait_for_wake(model)
        return None

    async def _wait_for_wake(self, model: str) -> bool:
        """Block until a job is queued or handed back (True), or for one poll interval (False).

        Redis gives each wake entry to one blocked worker (the group's), so a submit wakes one idle
        worker, not every one; an entry added since this worker's last read is read at once. Every
        queued job adds one entry, and every entry read is followed by a TAKE, so a job never waits
        while a worker blocks (``docs/architecture.md``)."""
        woken = await self.redis.xreadgroup(
            keys.WAKE_GROUP,
            self.consumer,
            {self.keys.wake(model): ">"},
            count=1,
            block=int(self.tuning.poll * 1000),
            noack=True,
        )
        return bool(woken)

    def _start_args(self) -> list[Any]:
        """START's arguments (``lua_functions.start_args``)."""
        now, maxlen, retention = self.connection.clock()
        return [
            self.consumer,
            now,
            maxlen,
            retention,
            self.settings.max_attempts,
            self.tuning.announce_limit,
            int(self.settings.lease * 1000),
        ]

    def _announce_soon(self, model: str) -> None:
        """Tell every waiting job its position, at most once a second: a start told only the first few."""
        if self._owed_announce is None or self._owed_announce.done():
            self._owed_announce = asyncio.create_task(self._announce_all(model), name=f"announce-{model}")

    async def _announce_all(self, model: str) -> None:
        await asyncio.sleep(max(0.0, self._last_full_announce + 1.0 - time.monotonic()))
        self._last_full_announce = time.monotonic()
        now, maxlen, retention = self.connection.clock()
        try:
            await self.scripts.announce(keys=self.connection.queues(model), args=[now, maxlen, retention])
        except RedisError as exc:  # positions are informational; the next start tries again
            log.warning("could not announce queue positions of %s: %s", model, exc)

    async def _begin(self, model: str, stream: str, msg_id: str, job_id: str) -> Assignment | None:
        reply = await self.scripts.start(
            keys=self.connection.queues(model), args=[job_id, *self._start_args()]
        )
        return await self._started(model, stream, msg_id, job_id, reply)

    async def _started(
        self, model: str, stream: str, msg_id: str, job_id: str, reply: list[Any]
    ) -> Assignment | None:
        """Act on the START script's reply: an assignment, or the entry acknowledged (and dead-lettered)."""
        code, attempts = Reply(reply[0]), int(reply[1])
        if code is Reply.FINISHED:  # cancelled or finished meanwhile
            await self._ack(stream, msg_id)
            return None
        if code is Reply.GAVE_UP:
            await self._dead_letter(job_id, model, attempts)
            await self._ack(stream, msg_id)
            return None
        self._wake_first = int(reply[4]) == 0
        if int(reply[4]) > self.tuning.announce_limit:
            self._announce_soon(model)
        assignment = Assignment(
            job_id=job_id,
            request=decode_request(reply[2]),
            created_at=float(reply[3]),
            attempt=attempts,
            ticket=(stream, msg_id),
        )
        self._leases[job_id] = asyncio.create_task(
            self._renew(model, job_id, stream, msg_id), name=f"lease-{job_id}"
        )
        return assignment

    async def _dead_letter(self, job_id: str, model: str, attempts: int) -> None:
        error = as_text(await self.redis.hget(self.keys.job(job_id), "error") or b"unknown")
        message = f"gave up after {attempts} attempts; last error: {error}"
        log.error("job %s moved to the dead-letter stream: %s", job_id, message)
        await self.redis.xadd(
            self.keys.dead_letters,
            {"job": job_id, "model": model, "error": error, "attempts": attempts, "time": time.time()},
        )
        with contextlib.suppress(LeaseLost):
            await self.publish(job_id, Failed(code=FailureCode.DEAD_LETTERED, message=message))

    async def _renew(self, model: str, job_id: str, stream: str, msg_id: str) -> None:
        interval = min(self.settings.lease / 3, self.tuning.heartbeat)  # renewals are the heartbeat too
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scripts.renew(
                    keys=[self.keys.job(job_id), stream, self.keys.workers(model)],
                    args=[self.consumer, msg_id, time.time()],
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

    @translated
    async def finish(
        self,
        assignment: Assignment,
        kind: EventKind,
        run_seconds: float,
        *,
        preceding: Sequence[EventKind] = (),
    ) -> None:
        """Publish the events not yet published and the terminal one, and acknowledge the entry, in one step.

        While Redis is unreachable the lease is still renewed (where it can be), so a worker retrying the
        finish keeps its job; whatever the script answers, renewing stops.
        """
        stream, msg_id = ticket_of(assignment)
        model, job_id = assignment.request.model, assignment.job_id
        now, maxlen, retention = self.connection.clock()
        # Only completed runs say how long a job takes; the script folds them into the class's average.
        observed = run_seconds if isinstance(kind, Completed) else ""
        ack = [msg_id, observed, estimate.size_class(assignment.request), estimate.ALPHA]
        try:
            reply = await self.scripts.finish(
                keys=[self.keys.job(job_id), stream, self.keys.stats(model)],
                args=[
                    job_id,
                    now,
                    maxlen,
                    retention,
                    assignment.attempt,
                    *ack,
                    *encoded_kinds([*preceding, kind]),
                ],
            )
        except UNREACHABLE:
            raise  # the job is still this worker's: the caller retries
        except BaseException:
            await self._stop_lease(job_id)
            raise
        await self._stop_lease(job_id)
        _lease_held(Reply(reply[0]), job_id)

    async def release(self, assignment: Assignment) -> bool:
        """Give a running job back to the queue (the worker is stopping): the next free worker starts it."""
        await self._stop_lease(assignment.job_id)
        stream, msg_id = ticket_of(assignment)
        now, maxlen, retention = self.connection.clock()
        try:
            job_id, queues = assignment.job_id, self.connection.queues(assignment.request.model)
            reply = await self.scripts.release(
                keys=[self.keys.job(job_id), stream, *queues],
                args=[now, maxlen, retention, assignment.attempt, self.consumer, msg_id],
            )
            return Reply(reply[0]) is Reply.DONE
        except RedisError as exc:
            log.warning("could not hand job %s back (%s); its lease will expire", assignment.job_id, exc)
            return True

    async def wait_cancel_requested(self, job_id: str) -> None:
        """Polled only while the job runs (one HGET per 100 ms); a Redis outage is waited out."""
        while True:
            await asyncio.sleep(0.1)
            try:
                if await self.redis.hget(self.keys.job(job_id), "cancel") == b"1":
                    return
            except UNREACHABLE:
                await asyncio.sleep(1.0)

    async def leave(self, model: str) -> None:
        """Remove this worker from the live set and from the wake stream's group (clean shutdown)."""
        with contextlib.suppress(RedisError):
            await self.redis.zrem(self.keys.workers(model), self.consumer)
            await self.redis.xgroup_delconsumer(self.keys.wake(model), keys.WAKE_GROUP, self.consumer)


def _lease_held(code: Reply, job_id: str) -> None:
    """Raise what a PUBLISH or FINISH reply other than DONE means."""
    if code is Reply.NO_JOB:
        raise JobNotFound(job_id)
    if code in (Reply.FINISHED, Reply.LEASE_LOST):
        raise LeaseLost(f"job {job_id} is finished or was taken over by another worker")
