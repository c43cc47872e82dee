"""The parts every process kind builds the same way, written once.

``catalog`` is read once per process; ``Front`` is what faces callers (the job
service, the embedder, the gRPC server) in the embedded server and in a gateway;
``build_worker`` makes the worker that runs jobs, in the embedded server and in
a worker process.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

import grpc

from moviola.adapters import registered
from moviola.api import server as grpc_server
from moviola.auth.keys import AuthFile, AuthFileError
from moviola.catalog import ModelSpec, catalog_of
from moviola.delivery import Delivery
from moviola.embed import factory as embed_factory
from moviola.embed.backend import EmbeddingBackend
from moviola.errors import MoviolaError
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.pipelines.base import VideoPipeline
from moviola.rest import app as rest_app
from moviola.rest.server import HttpFace
from moviola.runtime.logs import announce
from moviola.scheduler.base import FrontQueue, WorkerQueue
from moviola.search import factory as search_factory
from moviola.search.indexer import Indexer
from moviola.search.lance import LocalLock, WriteLock
from moviola.search.service import VideoSearch
from moviola.service import JobService
from moviola.settings import ServerSettings, Settings
from moviola.storage.base import Storage
from moviola.storage.factory import open_storage
from moviola.tracing import Tracing
from moviola.webhooks.deliverer import WebhookDeliverer
from moviola.webhooks.policy import WebhookPolicy
from moviola.webhooks.signing import Signer
from moviola.worker.runner import Worker

log = logging.getLogger(__name__)
#: Hosts that only this machine reaches.
LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: Seconds the gRPC server gives open streams to deliver their last events on shutdown.
STREAM_GRACE = 5.0


def catalog(settings: Settings) -> dict[str, ModelSpec]:
    """The model catalogue this process uses: ``--catalog``, else the one shipped with Moviola."""
    return catalog_of(settings.models.catalog)


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
    #: The auth file's keys; None: no authentication.
    keys: AuthFile | None = None
    #: The REST face (``--http-port``); None: gRPC only.
    http: HttpFace | None = None
    #: Sends webhooks; None without ``--webhook-secret``.
    webhooks: WebhookDeliverer | None = None
    #: Video search and the indexer that feeds it; None without ``--search-index``.
    search: VideoSearch | None = None
    indexer: Indexer | None = None

    def background(self) -> list[asyncio.Task[None]]:
        """The tasks the front runs while it serves (webhook delivery, search indexing)."""
        tasks = []
        if self.webhooks is not None:
            tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        if self.indexer is not None:
            tasks.append(asyncio.create_task(self.indexer.run(), name="search-indexer"))
        return tasks

    async def check_search(self) -> None:
        """Say where the index is; fail the start when no served embedding model can fill it."""
        if self.search is None:
            return
        try:
            model = await self.search.embedding_model()
        except MoviolaError as exc:
            if not exc.retryable:  # no model can fill the index: the start fails, saying so
                raise
            log.warning("video search: %s", exc.message)  # the backend is away for now: the indexer retries
            return
        announce.info("video search: %s, embedded with %s", (await self.search.index()).location, model)

    async def start_http(self, host: str) -> None:
        if self.http is not None:
            await self.http.start()
            announce.info("REST (OpenAI videos) on http://%s:%d/v1", host, self.http.port)

    async def stop_http(self, grace: float) -> None:
        if self.http is not None:
            await self.http.stop(grace)

    def reload_keys(self) -> None:
        """Re-read the auth file (SIGHUP): new and revoked keys count from the next call."""
        if self.keys is None:
            log.info("SIGHUP: no --auth-file to reload")
            return
        try:
            keyring = self.keys.reload()
        except AuthFileError as exc:
            log.error("SIGHUP: %s; the keys loaded before stay in use", exc)
            return
        announce.info("auth file reloaded: %d tenants, %d keys", keyring.tenants, keyring.keys)

    def announce_auth(self, settings: ServerSettings) -> None:
        """Say at start-up who may call: the auth file's tenants, or (loudly off loopback) anyone."""
        if self.keys is not None:
            ring = self.keys.keyring
            announce.info(
                "authentication: %d tenants, %d keys from %s", ring.tenants, ring.keys, self.keys.path
            )
        elif settings.host in LOOPBACK:
            announce.info(
                "unauthenticated: no --auth-file, so anyone who reaches %s:%d may call",
                settings.host,
                self.port,
            )
        else:
            log.warning(
                "UNAUTHENTICATED ON %s:%d: no --auth-file, so anyone who can reach this address can submit "
                "work to your GPUs, and watch, cancel or download any job. Set --auth-file (docs/security.md).",
                settings.host,
                self.port,
            )


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
    index_lock: WriteLock | None = None,
) -> Front:
    """The job service over ``queue``, the embedder, and the gRPC server (bound, not started)."""
    path = settings.server.auth_file
    keys = AuthFile(path) if path is not None else None
    signer = Signer(settings.server.webhook_secrets, keys.webhook_secrets if keys is not None else None)
    policy = WebhookPolicy(settings.server.webhook_allow_hosts)
    service = JobService(
        queue,
        models,
        default_model,
        lifecycle,
        metrics,
        tracing,
        accept_without_workers=settings.queue.accept_without_workers,
        webhooks=policy,
        signer=signer,
        adapters=registered(settings),
    )
    backend = embed_factory.backend(settings, in_process=in_process_embeddings)
    embedder = embed_factory.embedder(settings, backend, service.get, store, metrics)
    search = indexer = None
    if settings.search.enabled:
        opener = search_factory.opener(settings.search, index_lock or LocalLock(), os.environ)
        search = VideoSearch(opener, embedder, settings.search, queue.get)
        indexer = Indexer(queue, queue, embedder, search, metrics)
    delivery = Delivery(store, settings.storage, index=search)
    server, port = grpc_server.build(
        settings.server, service, delivery, embedder, lifecycle, metrics, keys, search
    )
    http = None
    if settings.server.http_port is not None:
        app, _ = rest_app.build(service, delivery, models, default_model, keys)
        http = HttpFace(app, settings.server.host, settings.server.http_port)
    webhooks = (
        WebhookDeliverer(queue, policy, signer, max_age=settings.server.webhook_max_age, metrics=metrics)
        if signer.may_sign
        else None
    )
    return Front(service, delivery, backend, server, port, keys, http, webhooks, search, indexer)


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
        speed_profile=settings.models.speed_profile,
        max_batch=settings.worker.max_batch,
    )
