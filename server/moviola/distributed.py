"""Scale-out processes: stateless gateways and one worker per GPU replica, joined by Redis.

moviola serve --redis-url redis://redis:6379/0          # a gateway; run as many as you like
moviola worker --model wan2.2-t2v-a14b --redis-url ...   # one per GPU replica
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from moviola import server as grpc_server
from moviola.catalog import BUILTIN_MODELS, ModelSpec, load_catalog, resolve
from moviola.embed import factory as embed_factory
from moviola.embedded import STREAM_GRACE
from moviola.errors import Unavailable
from moviola.gateway import Gateway
from moviola.lifecycle import Lifecycle, State
from moviola.metrics import Metrics, refresh_forever
from moviola.pipelines.loader import PipelineLoader, load_pipeline
from moviola.scheduler.redis import RedisJobQueue, RedisQueueConfig
from moviola.settings import Settings
from moviola.storage.local import LocalStorage
from moviola.tracing import Tracing
from moviola.worker.runner import Worker

log = logging.getLogger(__name__)
#: Start-up lines that tools wait for ("listening on", "ready"), printed at every log level.
announce = logging.getLogger("moviola.announce")

#: Seconds between checks that Redis answers (health follows them).
REDIS_CHECK_INTERVAL = 1.0


def queue_config(settings: Settings) -> RedisQueueConfig:
    assert settings.redis_url is not None
    return RedisQueueConfig(
        url=settings.redis_url,
        max_depth=settings.max_queue_depth,
        retention=settings.retention,
        lease=settings.lease,
        max_attempts=settings.max_attempts,
        batch_max_wait=settings.batch_max_wait,
    )


class GatewayServer:
    """A stateless gateway: validates, queues in Redis, streams events from Redis. Loads no model."""

    def __init__(self, settings: Settings, models: dict[str, ModelSpec] | None = None) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle()
        self.queue = RedisJobQueue(queue_config(settings), consumer="gateway")
        catalog = load_catalog(settings.catalog) if settings.catalog else BUILTIN_MODELS
        models = models or {i: s for i, s in catalog.items() if settings.include_opt_in or not s.opt_in}
        default = settings.model if settings.model in models else next(iter(models))
        self.metrics = Metrics() if settings.metrics_port is not None else None
        tracing = Tracing(settings.trace_file, "moviola-gateway")
        self.gateway = Gateway(self.queue, models, default, self.lifecycle, self.metrics, tracing)
        self.embedding_backend = embed_factory.backend(settings, in_process=False)
        embedder = embed_factory.embedder(settings, self.embedding_backend, self.gateway.get, self.metrics)
        self._server, self.port = grpc_server.build(settings, self.gateway, embedder, self.lifecycle)
        self._monitor: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.lifecycle.set(State.NEW)
        await self._server.start()
        announce.info("listening on %s:%d", self.settings.host, self.port)
        await self._check_redis()
        await self.embedding_backend.start()
        await self.lifecycle.set(State.READY)
        self._monitor = asyncio.create_task(self._watch_redis(), name="redis-monitor")
        if self.metrics is not None and self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port, self.settings.host)
            self._refresh = asyncio.create_task(refresh_forever(self.gateway.refresh_metrics))
            announce.info("metrics on http://%s:%d/metrics", self.settings.host, self.settings.metrics_port)
        announce.info("ready: gateway on %s", self.settings.redis_url)

    async def _check_redis(self) -> None:
        try:
            await self.queue.ping()
        except Unavailable as exc:
            if self.lifecycle.degraded is None:
                log.warning("%s: health is NOT_SERVING until it answers", exc.message)
            await self.lifecycle.set_degraded(exc.message)
        else:
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
        await self.stop(self.settings.drain_grace if grace is None else grace)

    async def stop(self, grace: float = STREAM_GRACE) -> None:
        for task in (self._monitor, self._refresh):
            if task is not None:
                task.cancel()
        await self._server.stop(grace)
        await self.queue.close()
        await self.embedding_backend.aclose()
        await self.lifecycle.set(State.STOPPED)

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class WorkerProcess:
    """One GPU replica: loads its model once, then runs one job at a time from Redis."""

    def __init__(self, settings: Settings, *, loader: PipelineLoader = load_pipeline) -> None:
        self.settings = settings
        catalog = load_catalog(settings.catalog) if settings.catalog else BUILTIN_MODELS
        self.spec = resolve(settings.model, settings.model_path, catalog)
        self.queue = RedisJobQueue(queue_config(settings), consumer=settings.worker_name)
        self.storage = LocalStorage(settings.data_dir / "videos")
        self._loader = loader
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pipeline = await asyncio.to_thread(self._loader, self.spec, self.settings)
        metrics = None
        if self.settings.metrics_port is not None:
            metrics = Metrics()
            metrics.serve(self.settings.metrics_port)
            announce.info("metrics on port %d", self.settings.metrics_port)
        tracing = Tracing(self.settings.trace_file, "moviola-worker")
        self.worker = Worker(
            self.queue,
            pipeline,
            self.storage,
            metrics=metrics,
            tracing=tracing,
            linger=self.settings.event_linger,
        )
        self._task = asyncio.create_task(self.worker.run(), name="worker")
        announce.info(
            "ready: worker %s serving %s from %s",
            self.settings.worker_name,
            self.spec.id,
            self.settings.redis_url,
        )

    async def drain(self, grace: float | None = None) -> None:
        """Stop taking jobs; finish the running one within the grace period or hand it back."""
        if self.worker is not None:
            await self.worker.drain(self.settings.drain_grace if grace is None else grace)
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.queue.leave(self.spec.id)
        await self.queue.close()
