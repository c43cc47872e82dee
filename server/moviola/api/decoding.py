"""Request bytes that do not parse as the RPC's request message: ``INVALID_ARGUMENT`` naming the message type.

grpc deserialises a request before any handler or interceptor code runs, and answers a failure
with ``UNKNOWN`` ("Unexpected <class 'DecodeError'>"). This interceptor takes the parsing over:
the handler gets raw bytes, parses them with the message's own ``FromString``, and refuses what
does not parse, before the servicer (or any inner interceptor's code) sees the call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

if TYPE_CHECKING:  # generic only in the type stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def _type_name(parse: Callable[[bytes], Any]) -> str:
    """``moviola.v1.GenerateRequest`` for ``GenerateRequest.FromString``."""
    owner = getattr(parse, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "the request message"))


class DecodeRequests(grpc.aio.ServerInterceptor):
    """Parse each unary request here, so that bytes that are not its message get ``INVALID_ARGUMENT``."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        parse: Callable[[bytes], Any] = handler.request_deserializer
        name = _type_name(parse)

        async def decoded(raw: bytes, context: Context) -> Any:
            try:
                return parse(raw)
            except (DecodeError, ValueError, TypeError) as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"request: the bytes sent are not a valid {name} message ({exc or type(exc).__name__})",
                )

        return _parsing_with(handler, decoded)


def _parsing_with(handler: Handler, decoded: Callable[[bytes, Context], Awaitable[Any]]) -> Handler:
    """``handler`` taking raw bytes, which ``decoded`` parses before its behaviour runs."""
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary

        async def unary_call(raw: bytes, context: Context) -> Any:
            return await unary(await decoded(raw, context), context)

        return grpc.unary_unary_rpc_method_handler(unary_call, response_serializer=serialize)
    streaming: Any = handler.unary_stream
    if streaming is None:
        return handler
    if inspect.isasyncgenfunction(streaming):

        async def stream_call(raw: bytes, context: Context) -> AsyncIterator[Any]:
            async for response in streaming(await decoded(raw, context), context):
                yield response

        return grpc.unary_stream_rpc_method_handler(stream_call, response_serializer=serialize)

    async def written_stream_call(raw: bytes, context: Context) -> None:  # it writes with context.write
        await streaming(await decoded(raw, context), context)

    return grpc.unary_stream_rpc_method_handler(written_stream_call, response_serializer=serialize)
