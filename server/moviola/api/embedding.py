"""``moviola.v1.EmbeddingService``: the contract is defined; the Triton backend comes next."""

from __future__ import annotations

import grpc

from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    async def Embed(
        self, request: emb.EmbedRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> emb.EmbedResponse:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "Embed is not served yet: the embedding backend (Triton) is not part of this release",
        )
