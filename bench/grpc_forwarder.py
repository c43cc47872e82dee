"""The floor of any Python gRPC gateway, for bench/embed.py: one hop that does nothing.

python bench/grpc_forwarder.py PORT UPSTREAM

Serves every unary method on PORT and forwards each request, as the bytes it came in, to
UPSTREAM (Triton) on one channel, and the answer back: no parsing, no checks, no logging.
A caller that points tritonclient here does exactly what it does straight to Triton, so the
difference between the two is what one Python gRPC hop costs on this machine (grpc.aio on
uvloop, like Moviola's gateway), and Embed's difference to this is Moviola's own work.
"""

from __future__ import annotations

import sys

import grpc
import uvloop


class Forwarder(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        method: str = details.method
        upstream: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            try:
                return await upstream(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")

        return grpc.unary_unary_rpc_method_handler(forward)


async def serve(port: int, upstream: str) -> None:
    limits = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(upstream, options=limits) as channel:
        server = grpc.aio.server(options=limits)
        server.add_generic_rpc_handlers([Forwarder(channel)])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"forwarding 127.0.0.1:{port} to {upstream}", flush=True)
        await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
