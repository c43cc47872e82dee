"""Per-call concerns of the gRPC server, in one place each: metrics and logging (and, later, auth).

Servicers stay translations; what every call shares wraps them here.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from moviola.api.auth import Authenticate
from moviola.api.decoding import DecodeRequests
from moviola.auth.keys import AuthFile
from moviola.metrics import Metrics

log = logging.getLogger("moviola.access")

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def _short(method: str) -> str:
    """``/moviola.v1.GenerationService/Generate`` → ``Generate``."""
    return method.rsplit("/", 1)[-1]


def _code(context: Context) -> str:
    code = context.code()
    if code is None:
        return "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


#: The streams whose open count is a metric (``moviola_active_streams{method}``).
COUNTED_STREAMS = ("/moviola.v1.GenerationService/Generate", "/moviola.v1.GenerationService/WatchJob")


class StreamMetrics(grpc.aio.ServerInterceptor):
    """``moviola_active_streams{method}``: open Generate and WatchJob streams."""

    def __init__(self, metrics: Metrics) -> None:
        self._gauge = metrics.active_streams

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_stream is None
            or handler_call_details.method not in COUNTED_STREAMS
        ):
            return handler
        gauge = self._gauge.labels(_short(handler_call_details.method))
        inner: Any = handler.unary_stream

        async def counted(request: Any, context: Context) -> AsyncIterator[Any]:
            gauge.inc()
            try:
                async for response in inner(request, context):
                    yield response
            finally:
                gauge.dec()

        return grpc.unary_stream_rpc_method_handler(
            counted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class AccessLog(grpc.aio.ServerInterceptor):
    """One DEBUG line per finished call: method, status code, seconds (``--log-level debug``)."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not log.isEnabledFor(logging.DEBUG):
            return handler
        method = _short(handler_call_details.method)
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def logged(request: Any, context: Context) -> Any:
                started = time.perf_counter()
                try:
                    return await unary(request, context)
                finally:
                    log.debug("%s %s %.3fs", method, _code(context), time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(
                logged,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            streaming: Any = handler.unary_stream

            async def logged_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                started = time.perf_counter()
                try:
                    async for response in streaming(request, context):
                        yield response
                finally:
                    log.debug("%s %s %.3fs", method, _code(context), time.perf_counter() - started)

            return grpc.unary_stream_rpc_method_handler(
                logged_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def interceptors(metrics: Metrics | None, keys: AuthFile | None = None) -> list[grpc.aio.ServerInterceptor]:
    """The server's interceptors, outermost first: the access log sees refused calls too; requests are
    parsed innermost (``decoding.py``)."""
    chain: list[grpc.aio.ServerInterceptor] = [AccessLog()]
    if keys is not None:
        chain.append(Authenticate(keys))
    if metrics is not None:
        chain.append(StreamMetrics(metrics))
    chain.append(DecodeRequests())  # innermost: the outer ones pass its raw bytes on untouched
    return chain
