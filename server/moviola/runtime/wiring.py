"""The parts every process kind builds the same way, written once.

``catalog`` is read once per process; ``Front`` is what faces callers (the job
service, the embedder, the gRPC server) in the embedded server and in a gateway;
``build_worker`` makes the worker that runs jobs, in the embedded server and in
a worker process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc

from moviola.api import server as grpc_server
from moviola.catalog import BUILTIN_MODELS, ModelSpec, load_catalog
from moviola.delivery import Delivery
from moviola.embed import factory as embed_factory
from moviola.embed.backend import EmbeddingBackend
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.pipelines.base import VideoPipeline
from moviola.runtime.logs import announce
from moviola.scheduler.base import FrontQueue, WorkerQueue
from moviola.service import JobService
from moviola.settings import Settings
from moviola.storage.base import Storage
from moviola.storage.factory import open_storage
from moviola.tracing import Tracing
from moviola.worker.runner import Worker

#: Seconds the gRPC server gives open streams to deliver their last events on shutdown.
STREAM_GRACE = 5.0


def catalog(settings: Settings) -> dict[str, ModelSpec]:
    """The model catalogue this process uses: ``--catalog``, else the one shipped with Moviola."""
    path = settings.models.catalog
    return load_catalog(path) if path else BUILTIN_MODELS


def storage(settings: Settings) -> Storage:
    """``--storage-url``'s storage (local disk under the data dir by default); ValueError when it names none."""
    return open_storage(settings.storage)


async def check_storage(store: Storage) -> None:
    """Fail the start (a clear message, exit 1) when the storage cannot be reached or written."""
    await asyncio.to_thread(store.check)
    announce.info("storage: %s", store.location)


def metrics(settings: Settings) -> Metrics | None:
    return Metrics() if settings.server.metrics_port is not None else None


@dataclass
class Front:
    """What faces callers: the job service, the embedding backend, the gRPC server and its port."""

    service: JobService
    delivery: Delivery
    embedding_backend: EmbeddingBackend
    server: grpc.aio.Server
    port: int


def build_front(
    settings: Settings,
    queue: FrontQueue,
    models: dict[str, ModelSpec],
    default_model: str,
    lifecycle: Lifecycle,
    store: Storage,
    *,
    metrics: Metrics | None,
    tracing: Tracing,
    in_process_embeddings: bool,
) -> Front:
    """The job service over ``queue``, the embedder, and the gRPC server (bound, not started)."""
    service = JobService(
        queue,
        models,
        default_model,
        lifecycle,
        metrics,
        tracing,
        accept_without_workers=settings.queue.accept_without_workers,
    )
    backend = embed_factory.backend(settings, in_process=in_process_embeddings)
    embedder = embed_factory.embedder(settings, backend, service.get, store, metrics)
    delivery = Delivery(store, settings.storage)
    server, port = grpc_server.build(settings.server, service, delivery, embedder, lifecycle, metrics)
    return Front(service, delivery, backend, server, port)


def build_worker(
    settings: Settings,
    queue: WorkerQueue,
    pipeline: VideoPipeline,
    storage: Storage,
    *,
    metrics: Metrics | None,
    tracing: Tracing,
) -> Worker:
    return Worker(
        queue,
        pipeline,
        storage,
        metrics=metrics,
        tracing=tracing,
        linger=settings.worker.event_linger,
        store_timeout=settings.worker.store_timeout,
    )
