"""The gateway process: validates, queues in Redis, streams events from Redis. Loads no model.

moviola serve --redis-url redis://redis:6379/0     # run as many as you like
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from moviola.catalog import ModelSpec
from moviola.errors import Unavailable
from moviola.lifecycle import Lifecycle, State
from moviola.metrics import refresh_forever
from moviola.runtime import wiring
from moviola.runtime.logs import announce
from moviola.scheduler.redis import RedisJobQueue
from moviola.scheduler.redis.connection import redacted
from moviola.service import JobService
from moviola.settings import Settings
from moviola.tracing import Tracing

log = logging.getLogger(__name__)

#: Seconds between checks that Redis answers (health follows them) and sweeps of overdue queued jobs.
REDIS_CHECK_INTERVAL = 1.0


class GatewayServer:
    def __init__(self, settings: Settings, models: dict[str, ModelSpec] | None = None) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle()
        self.queue = RedisJobQueue(settings.queue, consumer="gateway")
        catalog = wiring.catalog(settings)
        models = models or {
            i: s for i, s in catalog.items() if settings.models.include_opt_in or not s.opt_in
        }
        default = settings.models.model if settings.models.model in models else next(iter(models))
        self.metrics = wiring.metrics(settings)
        self.storage = wiring.storage(settings)
        self.front = wiring.build_front(
            settings,
            self.queue,
            models,
            default,
            self.lifecycle,
            self.storage,
            metrics=self.metrics,
            tracing=Tracing(settings.server.trace_file, "moviola-gateway"),
            in_process_embeddings=False,
            index_lock=self.queue.search_index_lock(),
        )
        self.port = self.front.port
        self._background: list[asyncio.Task[None]] = []

    def reload(self) -> None:
        """SIGHUP: re-read the auth file."""
        self.front.reload_keys()

    @property
    def service(self) -> JobService:
        return self.front.service

    async def start(self) -> None:
        server = self.settings.server
        await self.lifecycle.set(State.NEW)
        await wiring.check_storage(self.storage)
        await self.front.server.start()
        announce.info("listening on %s:%d", server.host, self.port)
        self.front.announce_auth(server)
        await self.front.start_http(server.host)
        self._background.extend(self.front.background())
        await self._check_redis()
        await self.front.embedding_backend.start()
        await self.front.check_search()
        await self.lifecycle.set(State.READY)
        self._background.append(asyncio.create_task(self._watch_redis(), name="redis-monitor"))
        if self.settings.storage.video_retention is not None:
            self._background.append(
                asyncio.create_task(self.front.delivery.sweep_forever(), name="retention")
            )
        if self.metrics is not None and server.metrics_port is not None:
            self.metrics.serve(server.metrics_port, server.host)
            self._background.append(asyncio.create_task(refresh_forever(self.service.refresh_metrics)))
            announce.info("metrics on http://%s:%d/metrics", server.host, server.metrics_port)
        announce.info("ready: gateway on %s", redacted(self.settings.queue.redis_url))

    async def failed(self) -> BaseException:
        """A gateway keeps serving while Redis is away (health says NOT_SERVING); it never fails on its own."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def _check_redis(self) -> None:
        try:
            await self.queue.ping()
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

    async def drain(self, grace: float | None = None) -> None:
        """Take no new work; open streams get up to the grace period to finish."""
        await self.lifecycle.set(State.DRAINING)
        await self.stop(self.settings.server.drain_grace if grace is None else grace)

    async def stop(self, grace: float = wiring.STREAM_GRACE) -> None:
        for task in self._background:
            task.cancel()
        await self.front.stop_http(wiring.STREAM_GRACE)
        await self.front.server.stop(grace)
        await self.queue.close()
        await self.front.embedding_backend.aclose()
        await self.lifecycle.set(State.STOPPED)

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
