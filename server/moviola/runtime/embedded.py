"""The embedded default: one process serves everything.

An in-process queue, one worker per served model running its pipeline on a
thread, local-disk storage and the front (``runtime/front.py``), started and
stopped together:

    async with EmbeddedServer(settings) as server:
        print(server.port)
        await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from moviola.catalog import resolve
from moviola.lifecycle import Lifecycle
from moviola.pipelines.loader import PipelineLoader, load_pipeline
from moviola.runtime import wiring
from moviola.runtime.front import FrontProcess, build_front
from moviola.runtime.logs import announce
from moviola.scheduler.memory import MemoryJobQueue
from moviola.settings import Settings
from moviola.tracing import Tracing
from moviola.worker.runner import SHUTDOWN_MESSAGE, Worker

log = logging.getLogger(__name__)


class EmbeddedServer(FrontProcess):
    def __init__(self, settings: Settings, *, loader: PipelineLoader = load_pipeline) -> None:
        catalog = wiring.catalog(settings)
        chosen = settings.models
        self.specs = [resolve(chosen.model, chosen.model_path, catalog)]
        self.specs += [resolve(m, None, catalog) for m in chosen.extra_models if m != chosen.model]
        self.spec = self.specs[0]
        lifecycle = Lifecycle()
        queue = MemoryJobQueue(settings.queue, worker=settings.worker.name)
        self.storage = wiring.storage(settings)
        metrics = wiring.metrics(settings)
        self.tracing = Tracing(settings.server.trace_file, "moviola")
        front = build_front(
            settings,
            queue,
            {spec.id: spec for spec in self.specs},
            self.spec.id,
            lifecycle,
            self.storage,
            metrics=metrics,
            tracing=self.tracing,
            in_process_embeddings=True,
        )
        super().__init__(settings, queue, front, lifecycle, metrics)
        self.queue: MemoryJobQueue = queue
        self._loader = loader
        self._workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []

    async def _prepare(self) -> None:
        """Load each model off the loop, and start its worker."""
        for spec in self.specs:
            pipeline = await asyncio.to_thread(self._loader, spec, self.settings)
            worker = wiring.build_worker(
                self.settings, self.queue, pipeline, self.storage, metrics=self.metrics, tracing=self.tracing
            )
            self.queue.add_worker(spec.id)
            self._workers.append(worker)
            self._worker_tasks.append(self.tasks.start(worker.run(), f"worker-{spec.id}"))

    async def _ready(self) -> None:
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

    async def _drain(self, grace: float) -> float:
        """Accepted jobs get ``grace`` seconds; then queued ones fail and the running one stops.

        Their streams then get ``STREAM_GRACE`` to deliver the last events."""
        try:
            await asyncio.wait_for(self.queue.wait_idle(), grace)
        except TimeoutError:
            failed = await self.queue.fail_queued(SHUTDOWN_MESSAGE)
            for worker in self._workers:
                worker.interrupt()
            log.warning("grace period over: stopped the running job, %d queued jobs failed", failed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.wait_idle(), wiring.STREAM_GRACE)
        return wiring.STREAM_GRACE

    async def _stop_work(self) -> None:
        for worker in self._workers:  # a running pipeline thread stops at its next step
            worker.interrupt()
