"""Errors in OpenAI's JSON shape, with the HTTP statuses the ``openai`` SDK maps to its own exceptions.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "size", "code": null}}

400 ``BadRequestError``, 401 ``AuthenticationError``, 403 ``PermissionDeniedError``,
404 ``NotFoundError``, 409 ``ConflictError``, 429 ``RateLimitError`` (with ``Retry-After``),
503 ``InternalServerError``: the same kinds as the gRPC face's statuses (``api/status.py``).
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from moviola.errors import (
    FailedPrecondition,
    InvalidRequest,
    MoviolaError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)

#: (kind, HTTP status, OpenAI error type), most specific first.
_KINDS: tuple[tuple[type[MoviolaError], int, str], ...] = (
    (InvalidRequest, 400, "invalid_request_error"),
    (NotFound, 404, "invalid_request_error"),
    (PermissionDenied, 403, "permission_error"),
    (FailedPrecondition, 409, "invalid_request_error"),
    (ResourceExhausted, 429, "rate_limit_error"),
    (Unavailable, 503, "server_error"),
)


def error_response(
    status: int, message: str, kind: str, *, param: str | None = None, retry_after: float | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(error: MoviolaError) -> JSONResponse:
    for kind, status, name in _KINDS:
        if isinstance(error, kind):
            param = error.field if isinstance(error, InvalidRequest) else None
            return error_response(status, error.message, name, param=param, retry_after=error.retry_after)
    return error_response(500, error.message, "server_error")


def unauthenticated(message: str) -> JSONResponse:
    return error_response(401, message, "authentication_error")
