"""The part of the Redis queue that gateways use (``FrontQueue``): submit, read, watch, cancel, estimate;
operators' calls; the webhook outbox and the completion feed (``webhooks``, ``completions``).

A worker process builds one too, beside its claims on its one connection, for the parts of its long
videos (``worker/pairing.py``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from moviola.errors import JobNotFound, ResourceExhausted
from moviola.jobs import (
    TERMINAL_KINDS,
    TERMINAL_STATES,
    JobEvent,
    JobRecord,
    JobRequest,
    JobState,
    Priority,
    Queued,
)
from moviola.quota import NO_LIMITS, Limits, over_in_flight, over_rate
from moviola.scheduler import estimate
from moviola.scheduler.base import Completion, DeadLetter, past
from moviola.scheduler.redis import contract
from moviola.scheduler.redis.codec import decode_request, encode_request
from moviola.scheduler.redis.completions import CompletionReader
from moviola.scheduler.redis.connection import Connection, as_text, to_event, translated
from moviola.scheduler.redis.contract import Reply, Submission
from moviola.scheduler.redis.feed import Delivery, EventFeed
from moviola.scheduler.redis.locks import RedisLock
from moviola.scheduler.redis.watches import Fresh, Watches
from moviola.scheduler.redis.webhooks import WebhookOutbox
from moviola.webhooks.outbox import Pending


class RedisFront:
    """``FrontQueue`` on one ``Connection``; ``close`` stops its own tasks, the connection's owner closes that."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.settings, self.tuning = connection.settings, connection.tuning
        self.redis, self.keys, self.scripts = connection.redis, connection.keys, connection.scripts
        self._feed = EventFeed(self.redis, block=self.tuning.poll, key=self.keys.feed)
        self._watches = Watches(self._read_job)
        self._outbox = WebhookOutbox(connection)
        self._completions = CompletionReader(connection)

    async def close(self) -> None:
        """Stop this front's watchers and feed reader."""
        await self._watches.close()
        await self._feed.close()

    @translated
    async def submit(self, request: JobRequest, limits: Limits = NO_LIMITS) -> tuple[JobRecord, bool]:
        return await self._submit(uuid.uuid4().hex, request, limits)

    @translated
    async def submit_watched(
        self, request: JobRequest, limits: Limits = NO_LIMITS
    ) -> tuple[JobRecord, bool, AsyncIterator[JobEvent]]:
        """``submit``, and the job's events from its first: a new job's inbox on the feed is opened before
        ``SUBMIT`` and its QUEUED comes from the reply, so following it costs no history read."""
        job_id = uuid.uuid4().hex
        inbox = await self._feed.open(job_id, wait=self.tuning.poll)
        try:
            record, created = await self._submit(job_id, request, limits)
        except BaseException:
            self._feed.drop(job_id, inbox)
            raise
        if not created:  # the idempotency key's earlier job
            self._feed.drop(job_id, inbox)
            return record, False, self.watch(record.id, model=record.model)
        queued = JobEvent(
            job_id, record.last_sequence, record.created_at, request.model, Queued(record.queue_position)
        )
        events = self._follow(job_id, request.model, inbox, [queued], False)
        fresh = Fresh(events, lambda: self._feed.drop(job_id, inbox))
        return record, True, self._watches.follow(job_id, request.model, fresh)

    async def _submit(self, job_id: str, request: JobRequest, limits: Limits) -> tuple[JobRecord, bool]:
        key = request.idempotency_key
        now, maxlen, retention = self.connection.clock()
        submission = Submission(
            id=job_id,
            model=request.model,
            tenant=request.tenant,
            created_at=now,
            start_by=request.start_by,
            batch=request.batch_key(),
            webhook=request.webhook_url,
            webhook_events=",".join(request.webhook_events),
            idempotent=bool(key),
            max_depth=self.settings.max_queue_depth,
            retention=retention,
            maxlen=maxlen,
            announce_limit=self.tuning.announce_limit,
            limits=contract.Limits(limits.in_flight, limits.rate, limits.bucket, limits.weight),
        )
        reply = await self.scripts.submit(
            keys=[
                self.keys.job(job_id),
                self.keys.events(job_id),
                self.keys.queue(request.model, request.priority),
                *self.connection.queues(request.model),
                self.keys.idempotency(request.idempotency_scope if key else "-"),
                self.keys.deadlines,
                self.keys.tenant_jobs(request.tenant),
                self.keys.in_flight,
                self.keys.rate(request.tenant),
            ],
            args=[submission.encode(), encode_request(request)],
        )
        code, value = Reply(reply[0]), as_text(reply[1])
        if code is Reply.QUEUE_FULL:
            raise ResourceExhausted(
                f"the queue of model {request.model} is full ({value} jobs waiting); retry later",
                retry_after=max(1.0, await self.estimate_wait(request) or 0.0),
            )
        if code is Reply.OVER_IN_FLIGHT:
            expected = _expected_run(await self.redis.hgetall(self.keys.stats(request.model)), request)
            raise over_in_flight(request.tenant, int(value), limits, max(1.0, expected or 1.0))
        if code is Reply.OVER_RATE:
            raise over_rate(request.tenant, limits, float(value))
        if code is Reply.DUPLICATE:
            return await self.get(value), False
        position, sequence = int(reply[2]), int(reply[3])
        record = JobRecord(id=job_id, request=request, created_at=now)
        return replace(record, queue_position=position, last_sequence=sequence), True

    @translated
    async def get(self, job_id: str) -> JobRecord:
        fields = await self.redis.hgetall(self.keys.job(job_id))
        if not fields:
            raise JobNotFound(job_id)
        data = {as_text(k): v for k, v in fields.items()}
        record = JobRecord(
            id=job_id, request=decode_request(data["request"]), created_at=float(data["created_at"])
        )
        for event in await self._events(job_id, 0, count=None, model=as_text(data["model"])):
            record = record.apply(event)
        return record

    @translated
    async def list_jobs(
        self,
        tenant: str,
        *,
        after: tuple[float, str] | None,
        limit: int,
        state: JobState | None,
        oldest_first: bool = False,
    ) -> list[JobRecord]:
        """From the tenant's index (scored by creation time) in the order asked, read a page at a time;
        ids whose job expired are skipped (and trimmed later)."""
        found: list[JobRecord] = []
        offset = 0
        while len(found) < limit:
            page = await self._index_page(tenant, after, offset, limit * 2, oldest_first)
            if not page:
                return found
            offset += len(page)
            for member, score in page:
                job_id = as_text(member)
                if after is not None and not past((score, job_id), after, oldest_first):
                    continue
                try:
                    record = await self.get(job_id)
                except JobNotFound:
                    continue
                if state is None or record.state == state:
                    found.append(record)
                    if len(found) == limit:
                        break
        return found

    async def _index_page(
        self, tenant: str, after: tuple[float, str] | None, offset: int, count: int, oldest_first: bool
    ) -> list[tuple[bytes, float]]:
        key = self.keys.tenant_jobs(tenant)
        if oldest_first:
            low: float | str = "-inf" if after is None else after[0]
            return await self.redis.zrangebyscore(key, low, "+inf", start=offset, num=count, withscores=True)  # type: ignore[no-any-return]
        top: float | str = "+inf" if after is None else after[0]
        return await self.redis.zrevrangebyscore(key, top, "-inf", start=offset, num=count, withscores=True)  # type: ignore[no-any-return]

    @translated
    async def forget(self, job_id: str, tenant: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.job(job_id), self.keys.events(job_id))
            await pipe.zrem(self.keys.tenant_jobs(tenant), job_id).execute()

    async def _events(self, job_id: str, after: int, *, count: int | None, model: str) -> list[JobEvent]:
        entries = await self.redis.xrange(self.keys.events(job_id), f"({after}-0", "+", count=count)
        return [
            to_event(job_id, model, int(as_text(entry_id).split("-")[0]), fields)
            for entry_id, fields in entries
        ]

    def watch(self, job_id: str, after_sequence: int = 0, *, model: str = "") -> AsyncIterator[JobEvent]:
        """Through the job's one reader on this gateway, which all its watchers share (``watches.py``)."""
        return self._watches.watch(job_id, after_sequence, model)

    async def _read_job(self, job_id: str, model: str) -> AsyncIterator[JobEvent]:
        """Every event of the job, its stream first and then the feed, to the terminal one."""
        model = model or await self._model_of(job_id)
        async with self._feed.subscribe(job_id, wait=self.tuning.poll) as inbox:
            events, finished = await self._read_stream(job_id, 0, model)
            async for event in self._follow(job_id, model, inbox, events, finished):
                yield event

    async def _follow(
        self,
        job_id: str,
        model: str,
        inbox: asyncio.Queue[Delivery],
        events: list[JobEvent],
        finished: bool,
    ) -> AsyncIterator[JobEvent]:
        """``events`` (the job's first ones; ``finished``: no more will come), then what follows them."""
        after = 0
        while True:
            for event in events:
                after = event.sequence
                yield event
                if isinstance(event.kind, TERMINAL_KINDS):
                    return
            if finished:
                return
            events, finished = await self._next_events(job_id, after, model, inbox)

    @translated
    async def _model_of(self, job_id: str) -> str:
        model = await self.redis.hget(self.keys.job(job_id), "model")
        if model is None:
            raise JobNotFound(job_id)
        return as_text(model)

    async def _next_events(
        self, job_id: str, after: int, model: str, inbox: asyncio.Queue[Delivery]
    ) -> tuple[list[JobEvent], bool]:
        """The events after ``after`` from the feed, if it has them all, else from the job's stream."""
        try:
            async with asyncio.timeout(self.tuning.poll):
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
            events.append(to_event(job_id, model, sequence, fields))
            after = sequence
        return events, False

    @translated
    async def _read_stream(self, job_id: str, after: int, model: str) -> tuple[list[JobEvent], bool]:
        """Events after ``after`` from the job's own stream, and whether none will ever follow."""
        events = await self._events(job_id, after, count=100, model=model)
        if events:
            return events, False
        state, last = await self.redis.hmget(self.keys.job(job_id), ["state", "seq"])
        if state is None:
            raise JobNotFound(job_id)  # expired while watched
        return [], JobState(as_text(state)) in TERMINAL_STATES and int(last) <= after

    @translated
    async def cancel(self, job_id: str) -> JobRecord:
        model = await self.redis.hget(self.keys.job(job_id), "model")
        if model is None:
            raise JobNotFound(job_id)
        now, maxlen, retention = self.connection.clock()
        await self.scripts.cancel(
            keys=[self.keys.job(job_id), *self.connection.queues(as_text(model))],
            args=[job_id, now, maxlen, retention],
        )
        return await self.get(job_id)

    @translated
    async def estimate_wait(self, request: JobRequest) -> float | None:
        """Seconds until ``request`` would start if submitted now; None while its model has no finished run.

        What is ahead is counted exactly (waiting jobs of its priority or ahead of it, running jobs);
        their sizes are taken to be the request's own, and a running job to be half done. One script
        reads it all (``ESTIMATE``): a Generate with a deadline pays one round trip for it, not five.
        """
        model = request.model
        interactive, batch, workers, running, stats = await self.scripts.estimate(
            keys=[*self.connection.queues(model), self.keys.workers(model), self.keys.stats(model)],
            args=[time.time() - self.tuning.live_window],
        )
        ahead = int(interactive) + (int(batch) if request.priority is Priority.BATCH else 0)
        workers, running = int(workers), int(running)
        if ahead == 0 and running < workers:
            return 0.0
        expected = _expected_run(dict(zip(stats[::2], stats[1::2], strict=True)), request)
        if expected is None:
            return None
        return estimate.wait(running=[expected / 2] * running, waiting=[expected] * ahead, workers=workers)

    @translated
    async def expire_overdue(self) -> int:
        """Fail queued jobs whose start_by passed (any gateway may sweep; the script makes it once); how many."""
        now, maxlen, retention = self.connection.clock()
        expired = await self.scripts.expire(keys=[self.keys.deadlines], args=[now, maxlen, retention, 100])
        return int(expired)

    @translated
    async def waiting(self, model: str) -> dict[Priority, int]:
        """Jobs waiting per priority: handed back by a stopping worker, or not yet read by any."""
        interactive, batch = await self.scripts.waiting(keys=self.connection.queues(model), args=[])
        return {Priority.INTERACTIVE: int(interactive), Priority.BATCH: int(batch)}

    @translated
    async def live_workers(self, model: str) -> list[str]:
        since = time.time() - self.tuning.live_window
        return [as_text(m) for m in await self.redis.zrangebyscore(self.keys.workers(model), since, "+inf")]

    @translated
    async def dead_letters(self) -> list[DeadLetter]:
        entries = await self.redis.xrange(self.keys.dead_letters)
        return [
            DeadLetter(
                job_id=as_text(f[b"job"]),
                model=as_text(f[b"model"]),
                error=as_text(f[b"error"]),
                attempts=int(f[b"attempts"]),
                time=float(f[b"time"]),
            )
            for _, f in entries
        ]

    @translated
    async def requeue(self, job_id: str) -> JobRecord:
        """Submit a dead-lettered job's request again, as a new job; drop the dead letter."""
        entries = [
            e for e in await self.redis.xrange(self.keys.dead_letters) if as_text(e[1][b"job"]) == job_id
        ]
        if not entries:
            raise JobNotFound(job_id)
        request = await self.redis.hget(self.keys.job(job_id), "request")
        if request is None:
            raise JobNotFound(job_id)
        record, _ = await self.submit(replace(decode_request(request), idempotency_key=""))
        await self.redis.xdel(self.keys.dead_letters, *[e[0] for e in entries])
        return record

    # The webhook outbox (``webhooks``) and the completion feed (``completions``).

    async def claim_webhooks(self, now: float, lease: float, limit: int) -> list[Pending]:
        return await self._outbox.claim(now, lease, limit)

    async def webhook_delivered(self, pending: Pending) -> None:
        await self._outbox.delivered(pending)

    async def webhook_retry(self, pending: Pending, at: float) -> None:
        await self._outbox.retry(pending, at)

    async def completions(self, wait: float) -> list[Completion]:
        return await self._completions.read(wait)

    async def ack_completions(self, tokens: Sequence[str]) -> None:
        await self._completions.ack(tokens)

    def search_index_lock(self) -> RedisLock:
        """The lock every gateway takes to write the shared search index."""
        return RedisLock(self.redis, self.keys.search_index_lock)


def _expected_run(stats: dict[bytes, bytes], request: JobRequest) -> float | None:
    """Seconds a run of ``request`` is expected to take, from its model's run statistics (``FINISH`` keeps
    them: ``c:<size class>`` → the class's average); None before any finished run."""
    known = {int(as_text(k)[2:]): float(v) for k, v in stats.items() if as_text(k).startswith("c:")}
    return estimate.scaled(known, estimate.size_class(request))
