"""The one place domain errors become gRPC status codes: a table keyed on the error's ``Kind``.

Retryable errors carry ``google.rpc.RetryInfo`` in the status details and the
``grpc-retry-pushback-ms`` trailer; invalid requests carry a
``google.rpc.BadRequest`` naming the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from moviola.errors import InvalidRequest, Kind, MoviolaError

#: Every kind's gRPC code (a test checks that none is missing).
CODES: dict[Kind, grpc.StatusCode] = {
    Kind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def status_code(error: MoviolaError) -> grpc.StatusCode:
    return CODES[error.kind]


def trailers(error: MoviolaError, code: grpc.StatusCode) -> tuple[tuple[str, str | bytes], ...]:
    details: list[any_pb2.Any] = []
    metadata: list[tuple[str, str | bytes]] = []
    if isinstance(error, InvalidRequest):
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.reason)
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        details.append(packed)
    if error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(error.retry_after * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
        metadata.append(("grpc-retry-pushback-ms", str(round(error.retry_after * 1000))))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=details)
    metadata.append(("grpc-status-details-bin", status.SerializeToString()))
    return tuple(metadata)


@asynccontextmanager
async def translated(context: grpc.aio.ServicerContext[object, object]) -> AsyncIterator[None]:
    """Abort the call with the status that matches a ``MoviolaError`` raised inside."""
    try:
        yield
    except MoviolaError as error:
        code = status_code(error)
        await context.abort(code, error.message, trailing_metadata=trailers(error, code))
