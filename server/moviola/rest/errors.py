"""Errors in OpenAI's JSON shape, with the HTTP statuses the ``openai`` SDK maps to its own exceptions.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "size", "code": null}}

The kind of error is the domain's (``errors.Kind``); each kind has its HTTP status here: 400
``BadRequestError``, 401 ``AuthenticationError``, 403 ``PermissionDeniedError``, 404
``NotFoundError``, 409 ``ConflictError``, 429 ``RateLimitError`` (with ``Retry-After``), 503 and
500 ``InternalServerError``.

Errors that never reach a route get the same shape (``install``): an unknown path (404), a method
the path does not serve (405, with an ``Allow`` header listing every method served on that path,
whichever route serves it), a body over the limit (413, ``rest/limits.py``), a body or form that
cannot be parsed (400), a parameter of the wrong type (400 naming it), and a bug (500, logged).
"""

from __future__ import annotations

import http
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

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
    status: int,
    message: str,
    kind: str,
    *,
    param: str | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    extra = dict(headers or {})
    if retry_after:
        extra["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=extra or None)


#: Kinds of error a repeated call may get past (the openai SDK retries only these: ``x-should-retry``).
PASSING = frozenset({Kind.RESOURCE_EXHAUSTED, Kind.UNAVAILABLE})


def from_error(error: MoviolaError) -> JSONResponse:
    status, kind = STATUSES[error.kind]
    param = error.field if isinstance(error, InvalidRequest) else None
    # The SDK retries every 409 and 5xx unless told; a refusal the same call meets again is not retried.
    again = error.kind in PASSING or error.retryable or error.retry_after is not None
    headers = {"x-should-retry": "true" if again else "false"}
    return error_response(
        status, error.message, kind, param=param, retry_after=error.retry_after, headers=headers
    )


class BodyTooLarge(Exception):
    """A request body that passed the server's limit while a route read it (``rest/limits.py``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    message = f"the request body is over this server's limit of {limit} bytes"
    return error_response(413, message, "invalid_request_error")


def install(app: FastAPI) -> None:
    """Give every error ``app`` can answer OpenAI's shape, those raised before a route runs included."""
    app.add_exception_handler(MoviolaError, _moviola_error)
    app.add_exception_handler(RequestValidationError, _bad_parameter)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BodyTooLarge, _too_large)
    # A bug: still logged with its traceback (Starlette re-raises it), but the caller's SDK can parse it.
    app.add_exception_handler(Exception, _internal)


def allowed_methods(app: Any, scope: Mapping[str, Any]) -> list[str]:
    """Every method some route of ``app`` serves on the path of ``scope`` (several routes may share one)."""
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, Route) and route.methods and route.matches(dict(scope))[0] is not Match.NONE:
            methods |= route.methods
    return sorted(methods)


async def _moviola_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, MoviolaError)
    return from_error(error)


async def _bad_parameter(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return error_response(
        400, f"{param}: {first.get('msg', 'invalid')}", "invalid_request_error", param=param
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """Starlette's own: no route for the path (404), none for the method (405), a body it cannot parse (400)."""
    assert isinstance(error, HTTPException)
    status, headers = error.status_code, dict(error.headers or {})
    where = f"{request.method} {request.url.path}"
    if status == 404:
        message = f"Invalid URL ({where})"
    elif status == 405:
        allowed = allowed_methods(request.app, request.scope)
        headers["Allow"] = ", ".join(allowed)
        message = f"Method not allowed ({where}); this path takes {', '.join(allowed)}"
    else:
        message = str(error.detail or http.HTTPStatus(status).phrase)
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return error_response(status, message, kind, headers=headers)


async def _too_large(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BodyTooLarge)
    return too_large(error.limit)


async def _internal(request: Request, error: Exception) -> JSONResponse:
    return error_response(500, "internal error: the server's log has the details", "server_error")
