"""The front: what faces callers, and the one lifecycle that starts and stops it.

``Front`` holds the job service and the faces over it (the gRPC server, the REST face), the
embedding backend, the webhook deliverer and the search indexer; ``build_front`` wires them.
``FrontProcess`` is the process that runs a front, an async context manager shared by the
embedded server (which adds its in-process workers) and a gateway (which adds its Redis):

    async with GatewayServer(settings) as gateway:
        await stop_requested.wait()

Start, in order: storage check, gRPC, HTTP, the front's tasks, LOADING, the process's own
preparation (``_prepare``), the embedder and the search index, metrics and the retention
sweep, READY. A start that fails stops everything already started.

Stop, in one order: stop taking calls (DRAINING: health NOT_SERVING, submits UNAVAILABLE),
drain (``_drain``: the embedded server lets accepted jobs finish), stop the work (every task
cancelled and awaited), close the servers (HTTP, then gRPC; open streams get the grace),
close the embedder and the queue, STOPPED.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from moviola import loop_lag
from moviola.adapters import registered
from moviola.admission import Admission
from moviola.aliases import Aliases
from moviola.api import server as grpc_server
from moviola.auth.keys import AuthFile, AuthFileError
from moviola.catalog import ModelSpec
from moviola.characters import Characters
from moviola.delivery import Delivery
from moviola.embed import factory as embed_factory
from moviola.embed.backend import EmbeddingBackend
from moviola.errors import MoviolaError
from moviola.fleet import Fleet
from moviola.lifecycle import Lifecycle, State
from moviola.metrics import Metrics, refresh_forever
from moviola.rest import app as rest_app
from moviola.rest.server import HttpFace
from moviola.runtime import wiring
from moviola.runtime.logs import announce
from moviola.runtime.process import Process
from moviola.scheduler.base import FrontQueue
from moviola.search import factory as search_factory
from moviola.search.indexer import Indexer
from moviola.search.lance import LocalLock, WriteLock
from moviola.search.service import NoSearch, VideoSearch
from moviola.service import JobService, owned
from moviola.settings import ServerSettings, Settings
from moviola.storage.base import Storage
from moviola.tracing import Tracing
from moviola.webhooks.deliverer import WebhookDeliverer
from moviola.webhooks.policy import WebhookPolicy
from moviola.webhooks.signing import Signer

log = logging.getLogger(__name__)
#: Hosts that only this machine reaches.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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

    def background(self) -> list[tuple[Coroutine[Any, Any, None], str]]:
        """The work the front runs while it serves (webhook delivery, search indexing), with names."""
        work: list[tuple[Coroutine[Any, Any, None], str]] = []
        if self.webhooks is not None:
            work.append((self.webhooks.run(), "webhooks"))
        if self.indexer is not None:
            work.append((self.indexer.run(), "search-indexer"))
        return work

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

    async def start_http(self, settings: ServerSettings) -> None:
        if self.http is not None:
            await self.http.start()
            announce.info("REST (OpenAI videos) on http://%s:%d/v1", settings.host, self.http.port)
            if settings.console:
                announce.info("console on http://%s:%d/", settings.host, self.http.port)

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
    """The job service over ``queue``, the embedder, and the faces (bound, not started)."""
    path = settings.server.auth_file
    keys = AuthFile(path) if path is not None else None
    signer = Signer(settings.server.webhook_secrets, keys.webhook_secrets if keys is not None else None)
    policy = WebhookPolicy(settings.server.webhook_allow_hosts)
    adapters = registered(settings)
    backend = embed_factory.backend(settings, in_process=in_process_embeddings)
    embedder = embed_factory.embedder(settings, backend, functools.partial(owned, queue), store, metrics)
    search = indexer = None
    if settings.search.enabled:
        opener = search_factory.opener(settings.search, index_lock or LocalLock(), settings.storage)
        search = VideoSearch(opener, embedder, settings.search, queue.get)
        indexer = Indexer(queue, queue, embedder, search, metrics)
    delivery = Delivery(store, settings.storage, index=search)
    admission = Admission(
        queue,
        models,
        default_model,
        lifecycle,
        adapters,
        accept_without_workers=settings.queue.accept_without_workers,
        webhooks=policy,
        signer=signer,
        aliases=Aliases.of(models, default_model, settings.models.model_aliases),
        strict_sizes=settings.models.strict_sizes,
    )
    service = JobService(
        queue,
        admission,
        delivery,
        models,
        default_model,
        lifecycle,
        adapters=adapters,
        metrics=metrics,
        tracing=tracing,
        characters=Characters(store),
        max_streams=settings.server.max_streams,
    )
    http = None
    if settings.server.http_port is not None:
        fleet = Fleet(queue, models, keys)
        app, _ = rest_app.build(
            service, keys, search=search or NoSearch(), fleet=fleet, console=settings.server.console
        )
        http = HttpFace(app, settings.server.host, settings.server.http_port)
    try:
        server, port = grpc_server.build(
            settings.server, service, embedder, search or NoSearch(), lifecycle, metrics, keys
        )
    except BaseException:
        if http is not None:
            http.close()  # the gRPC port is taken (or TLS unreadable): the HTTP port goes too
        raise
    webhooks = (
        WebhookDeliverer(queue, policy, signer, max_age=settings.server.webhook_max_age, metrics=metrics)
        if signer.may_sign
        else None
    )
    return Front(service, delivery, backend, server, port, keys, http, webhooks, search, indexer)


class Tasks:
    """The tasks a process runs while it serves; stopped together, every one cancelled and awaited."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a task that failed before: said once, never stops the stop
                log.exception("task %s had failed", task.get_name())


class FrontProcess(Process):
    """A process with a front: the embedded server and the gateway (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        queue: FrontQueue,
        front: Front,
        lifecycle: Lifecycle,
        metrics: Metrics | None,
    ) -> None:
        super().__init__(lifecycle)
        self.settings = settings
        self.queue = queue
        self.front = front
        self.port = front.port
        self.tasks = Tasks()
        self.metrics = metrics
        if metrics is not None:
            lifecycle.subscribe(metrics.follow)
        self._serving_grpc = False
        #: Seconds open streams get when the gRPC server stops.
        self._grace = wiring.STREAM_GRACE

    @property
    def service(self) -> JobService:
        return self.front.service

    def reload(self) -> None:
        """SIGHUP: re-read the auth file."""
        self.front.reload_keys()

    async def _prepare(self) -> None:
        """The process's own start, while LOADING (the embedded server's workers, the gateway's Redis)."""

    async def _ready(self) -> None:
        """The process's own work once READY (the gateway's Redis monitor), and what it says."""

    async def _drain(self, grace: float) -> float:
        """Let accepted work finish within ``grace`` seconds (calls are no longer taken); return the
        seconds open streams get next (a gateway's streams are its accepted work: all of the grace)."""
        return grace

    async def _stop_work(self) -> None:
        """Before the tasks are cancelled: stop what runs off the loop (a pipeline thread)."""

    async def _start(self) -> None:
        server, front = self.settings.server, self.front
        await self.lifecycle.set(State.NEW)
        await wiring.check_storage(front.delivery.storage)
        await front.server.start()
        self._serving_grpc = True
        announce.info("listening on %s:%d", server.host, self.port)
        front.announce_auth(server)
        await front.start_http(server)
        for work, name in front.background():
            self.tasks.start(work, name)
        await self.lifecycle.set(State.LOADING)
        await self._prepare()
        await front.embedding_backend.start()
        await front.check_search()
        if self.metrics is not None and server.metrics_port is not None:
            self.metrics.serve(server.metrics_port, server.metrics_host or server.host)
            self.tasks.start(refresh_forever(self.service.refresh_metrics), "metrics")
            self.tasks.start(loop_lag.watch(self.metrics.loop_lag.observe), "loop-lag")
            announce.info(
                "metrics on http://%s:%d/metrics", server.metrics_host or server.host, server.metrics_port
            )
        if self.settings.storage.video_retention is not None:
            self.tasks.start(front.delivery.sweep_forever(), "retention")
        await self.lifecycle.set(State.READY)
        await self._ready()

    async def drain(self, grace: float | None = None) -> None:
        """SIGTERM: take no new work, let accepted work finish within the grace period, then stop."""
        grace = self.settings.server.drain_grace if grace is None else grace
        await self.lifecycle.set(State.DRAINING)
        log.info("draining: up to %.0f s for accepted work", grace)
        await self.stop(await self._drain(grace))

    async def stop(self, grace: float = wiring.STREAM_GRACE) -> None:
        """Stop in the documented order; open streams get ``grace`` seconds to end. Safe to call twice."""
        self._grace = grace
        await super().stop()

    async def _stop(self) -> None:
        await self._stop_work()
        await self.tasks.stop()
        await self.front.stop_http(wiring.STREAM_GRACE)  # lets the port go, started or not
        if self._serving_grpc:
            await self.front.server.stop(self._grace)
            self._serving_grpc = False
        await self.front.embedding_backend.aclose()
        await self.queue.close()
