"""The embedded default: one process serves everything.

An in-process queue, one worker running the pipeline on a thread, local-disk
storage and the gRPC server, started and stopped together:

    async with EmbeddedServer(settings) as server:
        print(server.port)
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from moviola import server as grpc_server
from moviola.catalog import BUILTIN_MODELS, load_catalog, resolve
from moviola.embed import factory as embed_factory
from moviola.gateway import Gateway
from moviola.lifecycle import Lifecycle, State
from moviola.metrics import Metrics, refresh_forever
from moviola.pipelines.loader import PipelineLoader, load_pipeline
from moviola.scheduler.memory import MemoryJobQueue
from moviola.settings import Settings
from moviola.storage.local import LocalStorage
from moviola.tracing import Tracing
from moviola.worker.runner import SHUTDOWN_MESSAGE, Worker

log = logging.getLogger(__name__)
#: Start-up lines that tools wait for ("listening on", "ready"), printed at every log level.
announce = logging.getLogger("moviola.announce")

#: Seconds the gRPC server gives open streams to deliver their last events on shutdown.
STREAM_GRACE = 5.0


class EmbeddedServer:
    def __init__(self, settings: Settings, *, loader: PipelineLoader = load_pipeline) -> None:
        self.settings = settings
        catalog = load_catalog(settings.catalog) if settings.catalog else BUILTIN_MODELS
        self.specs = [resolve(settings.model, settings.model_path, catalog)]
        self.specs += [resolve(m, None, catalog) for m in settings.extra_models if m != settings.model]
        self.spec = self.specs[0]
        self.lifecycle = Lifecycle()
        self.queue = MemoryJobQueue(
            max_depth=settings.max_queue_depth,
            retain_finished=settings.retain_finished_jobs,
            batch_max_wait=settings.batch_max_wait,
            worker=settings.worker_name,
        )
        self.storage = LocalStorage(settings.data_dir / "videos")
        self.metrics = Metrics() if settings.metrics_port is not None else None
        models = {spec.id: spec for spec in self.specs}
        self.tracing = Tracing(settings.trace_file, "moviola")
        self.gateway = Gateway(self.queue, models, self.spec.id, self.lifecycle, self.metrics, self.tracing)
        self.embedding_backend = embed_factory.backend(settings, in_process=True)
        embedder = embed_factory.embedder(settings, self.embedding_backend, self.gateway.get, self.metrics)
        self._background: list[asyncio.Task[None]] = []
        self._server, self.port = grpc_server.build(settings, self.gateway, embedder, self.lifecycle)
        self._loader = loader
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Serve at once (health NOT_SERVING), load the model off the loop, then turn READY."""
        await self.lifecycle.set(State.NEW)
        await self._server.start()
        announce.info("listening on %s:%d", self.settings.host, self.port)
        await self.lifecycle.set(State.LOADING)
        for spec in self.specs:
            pipeline = await asyncio.to_thread(self._loader, spec, self.settings)
            worker = Worker(
                self.queue,
                pipeline,
                self.storage,
                metrics=self.metrics,
                tracing=self.tracing,
                linger=self.settings.event_linger,
            )
            self._workers.append(worker)
            self._worker_tasks.append(asyncio.create_task(worker.run(), name=f"worker-{spec.id}"))
        await self.embedding_backend.start()
        if self.metrics is not None and self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port, self.settings.host)
            self._background.append(asyncio.create_task(refresh_forever(self.gateway.refresh_metrics)))
            announce.info("metrics on http://%s:%d/metrics", self.settings.host, self.settings.metrics_port)
        await self.lifecycle.set(State.READY)
        announce.info("ready: serving model %s", ", ".join(spec.id for spec in self.specs))
        embedding = self.settings.triton_url or ", ".join(await self.embedding_backend.models())
        announce.info("embeddings: %s", embedding)

    async def drain(self, grace: float | None = None) -> None:
        """Take no new work, let accepted jobs finish within ``grace`` seconds, then stop."""
        grace = self.settings.drain_grace if grace is None else grace
        await self.lifecycle.set(State.DRAINING)
        log.info("draining: up to %.0f s for accepted jobs", grace)
        try:
            await asyncio.wait_for(self.queue.wait_idle(), grace)
        except TimeoutError:
            failed = await self.queue.fail_queued(SHUTDOWN_MESSAGE)
            for worker in self._workers:
                worker.interrupt()
            log.warning("grace period over: stopped the running job, %d queued jobs failed", failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.wait_idle(), STREAM_GRACE)
        await self.stop()

    async def stop(self) -> None:
        for worker in self._workers:  # a running pipeline thread stops at its next step
            worker.interrupt()
        for task in [*self._worker_tasks, *self._background]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.stop(STREAM_GRACE)
        await self.embedding_backend.aclose()
        await self.lifecycle.set(State.STOPPED)

    async def __aenter__(self) -> EmbeddedServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
