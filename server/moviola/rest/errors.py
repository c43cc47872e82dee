"""Errors in OpenAI's JSON shape, with the HTTP statuses the ``openai`` SDK maps to its own exceptions.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "size", "code": null}}

The kind of error is decided once, by the gRPC face's mapping (``api/status.py``); each gRPC code
has its HTTP status here: 400 ``BadRequestError``, 401 ``AuthenticationError``, 403
``PermissionDeniedError``, 404 ``NotFoundError``, 409 ``ConflictError``, 429 ``RateLimitError``
(with ``Retry-After``), 503 ``InternalServerError``.
"""

from __future__ import annotations

import math

import grpc
from starlette.responses import JSONResponse

from moviola.api.status import status_code
from moviola.errors import InvalidRequest, MoviolaError

#: gRPC code -> (HTTP status, OpenAI error type).
_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "server_error"),
}


def error_response(
    status: int, message: str, kind: str, *, param: str | None = None, retry_after: float | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(error: MoviolaError) -> JSONResponse:
    status, kind = _HTTP.get(status_code(error), (500, "server_error"))
    param = error.field if isinstance(error, InvalidRequest) else None
    return error_response(status, error.message, kind, param=param, retry_after=error.retry_after)


def unauthenticated(message: str) -> JSONResponse:
    return error_response(401, message, "authentication_error")
