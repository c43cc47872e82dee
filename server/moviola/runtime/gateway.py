"""The gateway process: validates, queues in Redis, streams events from Redis. Loads no model.

moviola serve --redis-url redis://redis:6379/0     # run as many as you like

Its front starts and stops as the embedded server's does (``runtime/front.py``); it adds the
Redis check before READY and a monitor that turns health NOT_SERVING while Redis is away.
It builds one Redis connection and the queue's front on it (``scheduler/redis/front.py``), never
its claims: those are the workers'.
"""

from __future__ import annotations

import asyncio
import logging

from moviola.catalog import ModelSpec
from moviola.errors import Unavailable
from moviola.lifecycle import Lifecycle
from moviola.runtime import wiring
from moviola.runtime.front import FrontProcess, build_front
from moviola.runtime.logs import announce
from moviola.scheduler.redis import Connection, RedisFront
from moviola.scheduler.redis.connection import redacted
from moviola.settings import Settings
from moviola.tracing import Tracing

log = logging.getLogger(__name__)

#: Seconds between checks that Redis answers (health follows them) and sweeps of overdue queued jobs.
REDIS_CHECK_INTERVAL = 1.0


class GatewayServer(FrontProcess):
    def __init__(self, settings: Settings, models: dict[str, ModelSpec] | None = None) -> None:
        lifecycle = Lifecycle()
        metrics = wiring.metrics(settings)
        connection = Connection(settings.queue, consumer="gateway", on_pool_wait=wiring.pool_waits(metrics))
        queue = RedisFront(connection)
        catalog = wiring.catalog(settings)
        models = models or {
            i: s for i, s in catalog.items() if settings.models.include_opt_in or not s.opt_in
        }
        default = settings.models.model if settings.models.model in models else next(iter(models))
        front = build_front(
            settings,
            queue,
            models,
            default,
            lifecycle,
            wiring.storage(settings),
            metrics=metrics,
            tracing=Tracing(settings.server.trace_file, "moviola-gateway"),
            in_process_embeddings=False,
            index_lock=queue.search_index_lock(),
        )
        super().__init__(settings, queue, front, lifecycle, metrics)
        self.queue: RedisFront = queue
        self.connection = connection

    async def _prepare(self) -> None:
        await self._check_redis()

    async def _ready(self) -> None:
        self.tasks.start(self._watch_redis(), "redis-monitor")
        announce.info("ready: gateway on %s", redacted(self.settings.queue.redis_url))

    async def _stop(self) -> None:
        await super()._stop()  # closes the front
        await self.connection.close()

    async def _check_redis(self) -> None:
        try:
            await self.connection.ping()
            expired = await self.queue.expire_overdue()
        except Unavailable as exc:
            if self.lifecycle.degraded is None:
                log.warning("%s: health is NOT_SERVING until it answers", exc.message)
            await self.lifecycle.set_degraded(exc.message)
        else:
            if expired:
                log.info("%d queued jobs did not start in time and failed", expired)
            if self.lifecycle.degraded is not None:
                log.info("Redis answers again: serving")
            await self.lifecycle.set_degraded(None)

    async def _watch_redis(self) -> None:
        while True:
            await asyncio.sleep(REDIS_CHECK_INTERVAL)
            await self._check_redis()
