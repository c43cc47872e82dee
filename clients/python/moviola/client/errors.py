"""Errors the client raises, translated from gRPC status codes in one place.

MoviolaError                 any failed call; .code, .message, .retry_after
├── InvalidArgument          a request field is wrong; .field names it
├── NotFound                 no such job
├── ResourceExhausted        the server is full; retry after .retry_after seconds
└── Unavailable              the server cannot take work now (starting, draining, down)
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2


class MoviolaError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        #: Seconds the server asked the caller to wait before retrying, when it said.
        self.retry_after = retry_after


class InvalidArgument(MoviolaError):
    def __init__(self, code: grpc.StatusCode, message: str, *, field: str = "", **kw: float | None) -> None:
        super().__init__(code, message, **kw)
        #: The request field the server rejected.
        self.field = field


class NotFound(MoviolaError):
    pass


class Unauthenticated(MoviolaError):
    """No API key, or one the server does not hold (``api_key=``, ``--api-key``, ``MOVIOLA_API_KEY``)."""


class PermissionDenied(MoviolaError):
    """The key's tenant may not do this (a model it may not use; dead letters without an admin key)."""


class FailedPrecondition(MoviolaError):
    """Valid, but not now (a job that has not completed has no video to download)."""


class ResourceExhausted(MoviolaError):
    pass


class Unavailable(MoviolaError):
    pass


_KINDS: dict[grpc.StatusCode, type[MoviolaError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def _status_details(error: grpc.RpcError) -> list[any_pb2.Any]:
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() or ()) if callable(trailing) else ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return list(status_pb2.Status.FromString(value).details)
    return []


def translate(error: grpc.RpcError) -> MoviolaError:
    """The ``MoviolaError`` for a failed call (sync or asyncio), with the field and retry delay the server sent."""
    code_of, details_of = getattr(error, "code", None), getattr(error, "details", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    message = (details_of() if callable(details_of) else None) or str(error)
    retry_after: float | None = None
    field = ""
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            retry_after = info.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            field = bad.field_violations[0].field if bad.field_violations else ""
    kind = _KINDS.get(code, MoviolaError)
    if kind is InvalidArgument:
        return InvalidArgument(code, message, field=field, retry_after=retry_after)
    return kind(code, message, retry_after=retry_after)
