"""Errors in OpenAI's JSON shape, with the HTTP statuses the ``openai`` SDK maps to its own exceptions.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "size", "code": null}}

The kind of error is the domain's (``errors.Kind``); each kind has its HTTP status here: 400
``BadRequestError``, 401 ``AuthenticationError``, 403 ``PermissionDeniedError``, 404
``NotFoundError``, 409 ``ConflictError``, 429 ``RateLimitError`` (with ``Retry-After``), 503 and
500 ``InternalServerError``.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from moviola.errors import InvalidRequest, Kind, MoviolaError

#: Every kind's (HTTP status, OpenAI error type) (a test checks that none is missing).
STATUSES: dict[Kind, tuple[int, str]] = {
    Kind.INVALID_ARGUMENT: (400, "invalid_request_error"),
    Kind.UNAUTHENTICATED: (401, "authentication_error"),
    Kind.PERMISSION_DENIED: (403, "permission_error"),
    Kind.NOT_FOUND: (404, "invalid_request_error"),
    Kind.FAILED_PRECONDITION: (409, "invalid_request_error"),
    Kind.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    Kind.UNAVAILABLE: (503, "server_error"),
    Kind.INTERNAL: (500, "server_error"),
}


def error_response(
    status: int, message: str, kind: str, *, param: str | None = None, retry_after: float | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_error(error: MoviolaError) -> JSONResponse:
    status, kind = STATUSES[error.kind]
    param = error.field if isinstance(error, InvalidRequest) else None
    return error_response(status, error.message, kind, param=param, retry_after=error.retry_after)
