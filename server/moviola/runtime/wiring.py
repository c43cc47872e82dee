"""The parts every process kind builds the same way, written once.

``catalog`` is read once per process; ``storage`` and ``metrics`` from the settings;
``build_worker`` makes the worker that runs jobs in the embedded server (one queue is both its
claims and its gateway), ``build_worker_of`` the one of a worker process (two parts of the Redis
queue). The front (what faces callers) is built in ``runtime/front.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from moviola.catalog import ModelSpec, catalog_of
from moviola.metrics import Metrics
from moviola.pipelines.base import VideoPipeline
from moviola.runtime.logs import announce
from moviola.scheduler.base import GatewayQueue, WorkerQueue
from moviola.settings import Settings
from moviola.storage.base import Storage
from moviola.storage.factory import open_storage
from moviola.tracing import Tracing
from moviola.worker.pairing import Partners
from moviola.worker.runner import Worker

log = logging.getLogger(__name__)
#: Seconds the gRPC server gives open streams to deliver their last events on shutdown.
STREAM_GRACE = 5.0


def catalog(settings: Settings) -> dict[str, ModelSpec]:
    """The model catalogue this process uses: ``--catalog``, else the one shipped with Moviola;
    with ``--max-seconds``, every model's longest video."""
    models = catalog_of(settings.models.catalog)
    longest = settings.models.max_seconds
    if longest is None:
        return models
    return {i: replace(s, limits=replace(s.limits, max_seconds=longest)) for i, s in models.items()}


def storage(settings: Settings) -> Storage:
    """``--storage-url``'s storage (local disk under the data dir by default); ValueError when it names none."""
    return open_storage(settings.storage)


async def check_storage(store: Storage) -> None:
    """Fail the start (a clear message, exit 1) when the storage cannot be reached or written."""
    await asyncio.to_thread(store.check)
    announce.info("storage: %s", store.location)


def metrics(settings: Settings) -> Metrics | None:
    return Metrics() if settings.server.metrics_port is not None else None


def pool_waits(metrics: Metrics | None) -> Callable[[float], None] | None:
    """What a Redis connection tells of each wait for a free connection: its histogram, if metrics are on."""
    return None if metrics is None else metrics.redis_pool_wait_seconds.observe


class Queue(WorkerQueue, GatewayQueue, Protocol):
    """A queue that is both a worker's and a gateway's (the embedded server's ``MemoryJobQueue``)."""


def build_worker(
    settings: Settings,
    queue: Queue,
    pipeline: VideoPipeline,
    storage: Storage,
    *,
    metrics: Metrics | None,
    tracing: Tracing,
) -> Worker:
    """The worker on ``queue``, which its long videos also submit their parts through."""
    return build_worker_of(settings, queue, queue, pipeline, storage, metrics=metrics, tracing=tracing)


def build_worker_of(
    settings: Settings,
    queue: WorkerQueue,
    parts: GatewayQueue,
    pipeline: VideoPipeline,
    storage: Storage,
    *,
    metrics: Metrics | None,
    tracing: Tracing,
) -> Worker:
    """The worker taking jobs from ``queue``; its long videos submit their parts through ``parts``
    (``worker/pairing.py``): a worker process's Redis claims and front."""
    return Worker(
        queue,
        pipeline,
        storage,
        metrics=metrics,
        tracing=tracing,
        linger=settings.worker.event_linger,
        store_timeout=settings.worker.store_timeout,
        speed_profile=settings.models.speed_profile,
        max_batch=settings.worker.max_batch,
        partners=Partners(parts, storage, catalog(settings)),
    )
