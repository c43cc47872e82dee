"""The gRPC server: services, health, reflection and message limits."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from moviola.api.embedding import EmbeddingServicer
from moviola.api.generation import GenerationServicer
from moviola.embed.service import Embedder
from moviola.gateway import Gateway
from moviola.lifecycle import Lifecycle
from moviola.settings import Settings
from moviola.v1 import embedding_pb2, embedding_pb2_grpc, generation_pb2, generation_pb2_grpc

SERVICES = (
    generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
    embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name,
)


def _options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
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
    ]


def build(
    settings: Settings, gateway: Gateway, embedder: Embedder, lifecycle: Lifecycle
) -> tuple[grpc.aio.Server, int]:
    """Create the server, bound but not started; return it and its port."""
    server = grpc.aio.server(options=_options(settings))
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(GenerationServicer(gateway), server)
    embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(EmbeddingServicer(embedder), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    async def on_state(serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", *SERVICES):
            await health_servicer.set(service, status)

    lifecycle.subscribe(on_state)
    reflection.enable_server_reflection(
        (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    return server, port
