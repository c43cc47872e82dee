"""The embedded default: one process serves everything.

An in-process queue, one worker per served model running its pipeline on a
thread, local-disk storage and the gRPC server, started and stopped together:

    async with EmbeddedServer(settings) as server:
        print(server.port)
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from moviola.catalog import resolve
from moviola.lifecycle import Lifecycle, State
from moviola.metrics import refresh_forever
from moviola.pipelines.loader import PipelineLoader, load_pipeline
from moviola.runtime import wiring
from moviola.runtime.logs import announce
from moviola.scheduler.memory import MemoryJobQueue
from moviola.service import JobService
from moviola.settings import Settings
from moviola.tracing import Tracing
from moviola.worker.runner import SHUTDOWN_MESSAGE, Worker

log = logging.getLogger(__name__)


class EmbeddedServer:
    def __init__(self, settings: Settings, *, loader: PipelineLoader = load_pipeline) -> None:
        self.settings = settings
        catalog = wiring.catalog(settings)
        chosen = settings.models
        self.specs = [resolve(chosen.model, chosen.model_path, catalog)]
        self.specs += [resolve(m, None, catalog) for m in chosen.extra_models if m != chosen.model]
        self.spec = self.specs[0]
        self.lifecycle = Lifecycle()
        self.queue = MemoryJobQueue(settings.queue, worker=settings.worker.name)
        self.storage = wiring.storage(settings)
        self.metrics = wiring.metrics(settings)
        self.tracing = Tracing(settings.server.trace_file, "moviola")
        models = {spec.id: spec for spec in self.specs}
        self.front = wiring.build_front(
            settings,
            self.queue,
            models,
            self.spec.id,
            self.lifecycle,
            self.storage,
            metrics=self.metrics,
            tracing=self.tracing,
            in_process_embeddings=True,
        )
        self.port = self.front.port
        self._loader = loader
        self._background: list[asyncio.Task[None]] = []
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []

    def reload(self) -> None:
        """SIGHUP: re-read the auth file."""
        self.front.reload_keys()

    @property
    def service(self) -> JobService:
        return self.front.service

    async def start(self) -> None:
        """Serve at once (health NOT_SERVING), load the models off the loop, then turn READY."""
        await self.lifecycle.set(State.NEW)
        server = self.settings.server
        await wiring.check_storage(self.storage)
        await self.front.server.start()
        announce.info("listening on %s:%d", server.host, self.port)
        self.front.announce_auth(server)
        await self.front.start_http(server.host)
        self._background.extend(self.front.background())
        await self.lifecycle.set(State.LOADING)
        for spec in self.specs:
            pipeline = await asyncio.to_thread(self._loader, spec, self.settings)
            worker = wiring.build_worker(
                self.settings, self.queue, pipeline, self.storage, metrics=self.metrics, tracing=self.tracing
            )
            self.queue.add_worker(spec.id)
            self._workers.append(worker)
            self._worker_tasks.append(asyncio.create_task(worker.run(), name=f"worker-{spec.id}"))
        await self.front.embedding_backend.start()
        await self.front.check_search()
        if self.metrics is not None and server.metrics_port is not None:
            self.metrics.serve(server.metrics_port, server.host)
            self._background.append(asyncio.create_task(refresh_forever(self.service.refresh_metrics)))
            announce.info("metrics on http://%s:%d/metrics", server.host, server.metrics_port)
        if self.settings.storage.video_retention is not None:
            self._background.append(
                asyncio.create_task(self.front.delivery.sweep_forever(), name="retention")
            )
        await self.lifecycle.set(State.READY)
        announce.info("ready: serving model %s", ", ".join(spec.id for spec in self.specs))
        embedding = self.settings.embed.triton_url or ", ".join(await self.front.embedding_backend.models())
        announce.info("embeddings: %s", embedding)

    async def failed(self) -> BaseException:
        """A worker that stopped on its own (it never should): the process cannot serve its model."""
        while True:
            done, _ = await asyncio.wait(self._worker_tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    assert error is not None
                    return error
            if done:
                return RuntimeError("a worker stopped taking jobs")

    async def drain(self, grace: float | None = None) -> None:
        """Take no new work, let accepted jobs finish within ``grace`` seconds, then stop."""
        grace = self.settings.server.drain_grace if grace is None else grace
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
                await asyncio.wait_for(self.queue.wait_idle(), wiring.STREAM_GRACE)
        await self.stop()

    async def stop(self) -> None:
        for worker in self._workers:  # a running pipeline thread stops at its next step
            worker.interrupt()
        for task in [*self._worker_tasks, *self._background]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.queue.close()
        await self.front.stop_http(wiring.STREAM_GRACE)
        await self.front.server.stop(wiring.STREAM_GRACE)
        await self.front.embedding_backend.aclose()
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
