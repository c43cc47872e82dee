"""Bearer keys on the REST face: the same auth file, tenants and check (``auth/check.py``) as gRPC.

A pure ASGI middleware (not per route): a request without a valid ``Authorization: Bearer KEY``
gets 401 before any route runs; a valid one runs as its tenant (``auth.caller.current()``) for
the whole response, streamed ones included. ``/healthz`` and the OpenAPI document need no key.
"""

from __future__ import annotations

from typing import Any

from moviola.auth import caller as callers
from moviola.auth.check import KeyCheck
from moviola.auth.keys import AuthFile
from moviola.errors import Unauthenticated
from moviola.rest.errors import from_error

OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})


class BearerAuth:
    def __init__(self, app: Any, keys: AuthFile | None) -> None:
        self.app = app
        self._check = KeyCheck(keys) if keys is not None else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._check is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        value = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            found = self._check.identify(value, carrier="header")
        except Unauthenticated as refused:
            await from_error(refused)(scope, receive, send)
            return
        token = callers.set_current(found)
        try:
            await self.app(scope, receive, send)
        finally:
            callers.reset(token)
