"""The worker process: one GPU replica loads its model once, then runs one job at a time from Redis.

moviola worker --model wan2.2-t2v-a14b --redis-url redis://redis:6379/0

Its lifecycle is the front's shape (``lifecycle.State``): NEW, LOADING while the model loads,
READY once it takes jobs, DRAINING after SIGTERM, STOPPED. ``moviola_ready`` on its metrics
port follows it. Started and stopped with ``async with``:

    async with WorkerProcess(settings) as worker:
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from moviola import loop_lag
from moviola.catalog import resolve
from moviola.errors import Unavailable
from moviola.lifecycle import Lifecycle, State
from moviola.pipelines.loader import PipelineLoader, load_pipeline
from moviola.runtime import wiring
from moviola.runtime.logs import announce
from moviola.runtime.process import Process
from moviola.scheduler.redis import Connection, RedisClaims, RedisFront
from moviola.scheduler.redis.connection import redacted
from moviola.settings import Settings
from moviola.tracing import Tracing
from moviola.worker.runner import Worker

log = logging.getLogger(__name__)


#: Where a worker's /metrics listens unless ``--metrics-host`` says otherwise: this host only.
LOOPBACK = "127.0.0.1"


class WorkerProcess(Process):
    def __init__(self, settings: Settings, *, loader: PipelineLoader = load_pipeline) -> None:
        super().__init__(Lifecycle())
        self.settings = settings
        models = settings.models
        self.spec = resolve(models.model, models.model_path, wiring.catalog(settings))
        # One connection: the claims it runs jobs from, and a front its long videos submit parts through.
        self.metrics = wiring.metrics(settings)
        self.connection = Connection(
            settings.queue, consumer=settings.worker.name, on_pool_wait=wiring.pool_waits(self.metrics)
        )
        self.queue = RedisClaims(self.connection)
        self.parts = RedisFront(self.connection)
        self.storage = wiring.storage(settings)
        if self.metrics is not None:
            self.lifecycle.subscribe(self.metrics.follow)
        self._loader = loader
        self.worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        await self.lifecycle.set(State.NEW)
        await wiring.check_storage(self.storage)
        port, host = self.settings.server.metrics_port, self.settings.server.metrics_host or LOOPBACK
        if self.metrics is not None and port is not None:
            self.metrics.serve(port, host)
            self._lag = asyncio.create_task(loop_lag.watch(self.metrics.loop_lag.observe), name="loop-lag")
            announce.info("metrics on http://%s:%d/metrics", host, port)
        await self.lifecycle.set(State.LOADING)
        pipeline = await asyncio.to_thread(self._loader, self.spec, self.settings)
        self.worker = wiring.build_worker_of(
            self.settings,
            self.queue,
            self.parts,
            pipeline,
            self.storage,
            metrics=self.metrics,
            tracing=Tracing(self.settings.server.trace_file, "moviola-worker"),
        )
        with contextlib.suppress(
            Unavailable
        ):  # live before it says ready (the take loop waits an outage out)
            await self.queue.heartbeat(self.spec.id)
        self._task = asyncio.create_task(self.worker.run(), name="worker")
        await self.lifecycle.set(State.READY)
        announce.info(
            "ready: worker %s serving %s from %s",
            self.settings.worker.name,
            self.spec.id,
            redacted(self.settings.queue.redis_url),
        )

    async def failed(self) -> BaseException:
        """The worker's loop ended on its own: it cannot go on, so the process exits for its supervisor."""
        assert self._task is not None, "failed() is awaited after start()"
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            return exc
        return RuntimeError(f"the worker for {self.spec.id} stopped taking jobs")

    async def drain(self, grace: float | None = None) -> None:
        """Stop taking jobs; finish the running one within the grace period or hand it back."""
        await self.lifecycle.set(State.DRAINING)
        if self.worker is not None:
            await self.worker.drain(self.settings.server.drain_grace if grace is None else grace)
        await self.stop()

    async def _stop(self) -> None:
        """Stop the worker's loop, leave the worker registry, close the queue's parts and its connection."""
        for task in (self._task, self._lag):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # failed() has said why the worker's ended
        with contextlib.suppress(Unavailable):  # Redis away: the heartbeat expires on its own
            await self.queue.leave(self.spec.id)
        await self.queue.close()
        await self.parts.close()
        await self.connection.close()
