"""The gRPC server: services, health, reflection and message limits."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from moviola.api.embedding import EmbeddingServicer
from moviola.api.generation import GenerationServicer
from moviola.api.interceptors import interceptors
from moviola.api.search import SearchServicer
from moviola.auth.keys import AuthFile
from moviola.embed.service import Embedder
from moviola.lifecycle import Lifecycle
from moviola.metrics import Metrics
from moviola.search.service import Searching
from moviola.service import JobService
from moviola.settings import ServerSettings
from moviola.v1 import (
    embedding_pb2,
    embedding_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

SERVICES = (
    generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
    embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name,
    search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name,
)


#: Largest metadata (headers) a call may carry, in bytes (docs/security.md).
MAX_METADATA_BYTES = 16 * 1024


def _options(settings: ServerSettings) -> list[tuple[str, int]]:
    return [
        # A port in use is an error, not shared: two servers on one port would split callers between them.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Headers of a call (the API key, trace context) above this are refused: RESOURCE_EXHAUSTED.
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        # Answer keepalive pings from long Generate streams without tearing the connection down.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Ping idle clients so that dead connections (a vanished pod, a NAT timeout) are noticed.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Close connections after 5 minutes (GOAWAY; open streams may finish within the grace), so that
        # callers reconnect and spread over gateway replicas added since, behind a Kubernetes Service.
        ("grpc.max_connection_age_ms", 5 * 60_000),
        ("grpc.max_connection_age_grace_ms", 24 * 3600_000),
        # Calls that arrived but that the server has not yet handed to a handler. grpc cancels those past
        # its defaults (1,000, then 3,000), with nothing logged: a burst of thousands of WatchJob streams
        # ended CANCELLED with no event. Past --max-streams the service refuses them (RESOURCE_EXHAUSTED).
        ("grpc.server.max_pending_requests", 2 * settings.max_streams + 1000),
        ("grpc.server.max_pending_requests_hard_limit", 2 * settings.max_streams + 1000),
    ]


def build(
    settings: ServerSettings,
    service: JobService,
    embedder: Embedder,
    search: Searching,
    lifecycle: Lifecycle,
    metrics: Metrics | None = None,
    keys: AuthFile | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Create the server, bound but not started; return it and its port.

    Raises ``PortInUse`` when another process listens on the port.
    """
    server = grpc.aio.server(options=_options(settings), interceptors=interceptors(metrics, keys))
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(GenerationServicer(service), server)
    embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(EmbeddingServicer(embedder), server)
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(search), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    async def on_state(serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *SERVICES):
            await health_servicer.set(service, status)

    lifecycle.subscribe(on_state)
    if settings.serves_reflection:
        reflection.enable_server_reflection(
            (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
    address = f"{settings.host}:{settings.port}"
    try:
        credentials = _tls(settings)
        port = (
            server.add_insecure_port(address)
            if credentials is None
            else server.add_secure_port(address, credentials)
        )
    except RuntimeError as exc:  # grpcio 1.85 raises where older ones returned 0
        raise PortInUse(settings.port, address) from exc
    if port == 0:
        raise PortInUse(settings.port, address)
    return server, port


def _tls(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """TLS from PEM files (client certificates required when a client CA is given); None: plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        chain, key = settings.tls_cert.read_bytes(), settings.tls_key.read_bytes()
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    except OSError as exc:
        raise TlsFilesUnreadable(f"cannot read a TLS file: {exc}") from exc
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


class TlsFilesUnreadable(OSError):
    pass


class PortInUse(OSError):
    def __init__(self, port: int, address: str) -> None:
        super().__init__(f"port {port} is in use (cannot listen on {address})")
