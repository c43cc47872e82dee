"""The gRPC face of the key check (``auth/check.py``): an interceptor in front of every servicer.

A call without ``authorization: Bearer KEY`` metadata, or with a key the auth file does not hold
(unknown, revoked, malformed), ends UNAUTHENTICATED before any servicer runs. A known key makes
its tenant the call's caller (``auth.caller.current()``) for as long as the call runs. The health
service answers without a key, so that load balancers and Kubernetes probes need none.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from moviola.auth import caller as callers
from moviola.auth.caller import Caller
from moviola.auth.check import KeyCheck
from moviola.auth.keys import AuthFile
from moviola.errors import Unauthenticated

log = logging.getLogger("moviola.auth")

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]

#: Methods that answer without a key.
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def _authorization(metadata: object) -> str | bytes | None:
    """The call's ``authorization`` metadata value; None when absent."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == "authorization":
            return value  # type: ignore[no-any-return]
    return None


class Authenticate(grpc.aio.ServerInterceptor):
    def __init__(self, keys: AuthFile) -> None:
        self._check = KeyCheck(keys)

    def identify(self, metadata: object) -> Caller | str:
        """The caller, or why not (the UNAUTHENTICATED message)."""
        try:
            return self._check.identify(_authorization(metadata), carrier="metadata")
        except Unauthenticated as refused:
            return refused.message

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        found = self.identify(handler_call_details.invocation_metadata)
        if isinstance(found, str):
            log.info("refused %s: %s", handler_call_details.method, found)
        return _as(handler, found)


def _as(handler: Handler, found: Caller | str) -> Handler:
    """``handler`` run as ``found`` (the caller), or aborting with UNAUTHENTICATED (``found`` is why)."""

    async def enter(context: Context) -> Any:
        if isinstance(found, str):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, found)
        return callers.set_current(found)

    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    for behaviour, make in _MAKERS:
        inner = getattr(handler, behaviour)
        if inner is not None:
            return make(_run_as(inner, enter), **options)  # type: ignore[no-any-return]
    return handler


#: Each kind of handler, and what builds one like it.
_MAKERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def _run_as(inner: Any, enter: Callable[[Context], Awaitable[Any]]) -> Any:
    """A behaviour (coroutine, or async generator for a streamed answer) run as the caller."""
    if inspect.isasyncgenfunction(inner):

        async def generated(request: Any, context: Context) -> AsyncIterator[Any]:
            token = await enter(context)
            try:
                async for response in inner(request, context):
                    yield response
            finally:
                callers.reset(token)

        return generated

    async def returned(request: Any, context: Context) -> Any:
        token = await enter(context)
        try:
            return await inner(request, context)
        finally:
            callers.reset(token)

    return returned
