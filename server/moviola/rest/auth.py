"""Bearer keys on the REST face: the same auth file, tenants and check as the gRPC interceptor.

A pure ASGI middleware (not per route): a request without a valid ``Authorization: Bearer KEY``
gets 401 before any route runs; a valid one runs as its tenant (``auth.caller.current()``) for
the whole response, streamed ones included. ``/healthz`` and the OpenAPI document need no key.
"""

from __future__ import annotations

from typing import Any

from moviola.api.auth import Authenticate
from moviola.auth import caller as callers
from moviola.auth.keys import AuthFile
from moviola.rest.errors import unauthenticated

OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})


class BearerAuth:
    def __init__(self, app: Any, keys: AuthFile | None) -> None:
        self.app = app
        self._check = Authenticate(keys) if keys is not None else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._check is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        found = self._check.identify(headers)
        if isinstance(found, str):
            await unauthenticated(found.replace("metadata", "header"))(scope, receive, send)
            return
        token = callers.set_current(found)
        try:
            await self.app(scope, receive, send)
        finally:
            callers.reset(token)
