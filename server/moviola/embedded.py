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
from collections.abc import Callable
from types import TracebackType

from moviola import server as grpc_server
from moviola.catalog import ModelSpec, resolve
from moviola.gateway import Gateway
from moviola.lifecycle import Lifecycle, State
from moviola.pipelines.base import VideoPipeline
from moviola.scheduler.memory import MemoryJobQueue
from moviola.settings import Settings
from moviola.storage.local import LocalStorage
from moviola.worker.runner import SHUTDOWN_MESSAGE, Worker

log = logging.getLogger(__name__)
#: Start-up lines that tools wait for ("listening on", "ready"), printed at every log level.
announce = logging.getLogger("moviola.announce")

PipelineLoader = Callable[[ModelSpec, Settings], VideoPipeline]

#: Seconds the gRPC server gives open streams to deliver their last events on shutdown.
STREAM_GRACE = 5.0


def _default_loader(spec: ModelSpec, settings: Settings) -> VideoPipeline:
    from moviola.pipelines.loader import load_pipeline

    return load_pipeline(spec, settings)


class EmbeddedServer:
    def __init__(self, settings: Settings, *, loader: PipelineLoader = _default_loader) -> None:
        self.settings = settings
        self.spec = resolve(settings.model, settings.model_path)
        self.lifecycle = Lifecycle()
        self.queue = MemoryJobQueue(
            max_depth=settings.max_queue_depth,
            retain_finished=settings.retain_finished_jobs,
            batch_max_wait=settings.batch_max_wait,
            worker=settings.worker_name,
        )
        self.storage = LocalStorage(settings.data_dir / "videos")
        self.gateway = Gateway(self.queue, {self.spec.id: self.spec}, self.spec.id, self.lifecycle)
        self._server, self.port = grpc_server.build(settings, self.gateway, self.lifecycle)
        self._loader = loader
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve at once (health NOT_SERVING), load the model off the loop, then turn READY."""
        await self.lifecycle.set(State.NEW)
        await self._server.start()
        announce.info("listening on %s:%d", self.settings.host, self.port)
        await self.lifecycle.set(State.LOADING)
        pipeline = await asyncio.to_thread(self._loader, self.spec, self.settings)
        self._worker = Worker(self.queue, pipeline, self.storage)
        self._worker_task = asyncio.create_task(self._worker.run(), name="worker")
        await self.lifecycle.set(State.READY)
        announce.info("ready: serving model %s", self.spec.id)

    async def drain(self, grace: float | None = None) -> None:
        """Take no new work, let accepted jobs finish within ``grace`` seconds, then stop."""
        grace = self.settings.drain_grace if grace is None else grace
        await self.lifecycle.set(State.DRAINING)
        log.info("draining: up to %.0f s for accepted jobs", grace)
        try:
            await asyncio.wait_for(self.queue.wait_idle(), grace)
        except TimeoutError:
            failed = await self.queue.fail_queued(SHUTDOWN_MESSAGE)
            if self._worker is not None:
                self._worker.interrupt()
            log.warning("grace period over: stopped the running job, %d queued jobs failed", failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.wait_idle(), STREAM_GRACE)
        await self.stop()

    async def stop(self) -> None:
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
        await self._server.stop(STREAM_GRACE)
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
