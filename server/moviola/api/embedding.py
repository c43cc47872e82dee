"""``moviola.v1.EmbeddingService``: protos in, ``Embedder`` call, protos out."""

from __future__ import annotations

import grpc

from moviola.api.status import status_code, translated
from moviola.auth import caller as callers
from moviola.embed.batch import Outcome, embed_batch
from moviola.embed.service import (
    Embedder,
    Embedding,
    EmbedQuery,
    ImageInput,
    Input,
    JobInput,
    ModelListing,
    Pooling,
    TextInput,
    VideoInput,
    VideoUriInput,
)
from moviola.errors import InvalidRequest, MoviolaError
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc

_POOLING = {
    emb.POOLING_UNSPECIFIED: Pooling.MEAN,
    emb.POOLING_MEAN: Pooling.MEAN,
    emb.POOLING_TEMPORAL: Pooling.TEMPORAL,
}
_POOLING_PROTO = {Pooling.MEAN: emb.POOLING_MEAN, Pooling.TEMPORAL: emb.POOLING_TEMPORAL}


def _input(request: emb.EmbedRequest) -> Input:
    match request.WhichOneof("input"):
        case "text":
            return TextInput(request.text)
        case "image":
            return ImageInput(request.image)
        case "video":
            return VideoInput(request.video)
        case "video_uri":
            return VideoUriInput(request.video_uri)
        case "job_id":
            return JobInput(request.job_id)
    raise InvalidRequest("input", "set one of text, image, video, video_uri or job_id")


def query(request: emb.EmbedRequest) -> EmbedQuery:
    if request.pooling not in _POOLING:
        raise InvalidRequest("pooling", f"unknown value {request.pooling}")
    return EmbedQuery(
        input=_input(request),
        model=request.model,
        frame_count=request.frame_count,
        frames_per_second=request.frames_per_second,
        pooling=_POOLING[request.pooling],
        return_frames=request.return_frame_embeddings,
        caller=callers.current(),
    )


def response(result: Embedding) -> emb.EmbedResponse:
    return emb.EmbedResponse(
        vector=result.vector.tolist(),
        dimension=len(result.vector),
        model=result.model,
        frames=[
            emb.FrameEmbedding(frame_index=f.index, time_seconds=f.time, vector=f.vector.tolist())
            for f in result.frames
        ],
        pooling=_POOLING_PROTO[result.pooling] if result.pooling else emb.POOLING_UNSPECIFIED,
        sampled_frames=result.sampled_frames,
    )


def _query_or_error(request: emb.EmbedRequest) -> EmbedQuery | MoviolaError:
    try:
        return query(request)
    except MoviolaError as error:
        return error


def batch_result(outcome: Outcome) -> emb.EmbedBatchResult:
    if isinstance(outcome, MoviolaError):
        return emb.EmbedBatchResult(
            error=emb.EmbedError(
                code=status_code(outcome).name,
                message=outcome.message,
                field=outcome.field if isinstance(outcome, InvalidRequest) else "",
                retry_after_seconds=outcome.retry_after or 0.0,
            )
        )
    return emb.EmbedBatchResult(embedding=response(outcome))


def model_info(listing: ModelListing) -> emb.EmbeddingModelInfo:
    model = listing.model
    return emb.EmbeddingModelInfo(
        id=model.name,
        accepts_text=model.accepts_text,
        accepts_images=model.accepts_images,
        image_size=model.image_size or 0,
        default_for_text=listing.default_for_text,
        default_for_images=listing.default_for_images,
        license=model.license,
    )


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    async def Embed(
        self, request: emb.EmbedRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> emb.EmbedResponse:
        async with translated(context):
            return response(await self._embedder.embed(query(request)))
        raise AssertionError("unreachable: translated() aborts the call")

    async def EmbedBatch(
        self, request: emb.EmbedBatchRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> emb.EmbedBatchResponse:
        async with translated(context):
            outcomes = await embed_batch(self._embedder, [_query_or_error(r) for r in request.requests])
            return emb.EmbedBatchResponse(results=[batch_result(o) for o in outcomes])
        raise AssertionError("unreachable: translated() aborts the call")

    async def ListEmbeddingModels(
        self, request: emb.ListEmbeddingModelsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> emb.ListEmbeddingModelsResponse:
        async with translated(context):
            listings = await self._embedder.models()
            return emb.ListEmbeddingModelsResponse(models=[model_info(listing) for listing in listings])
        raise AssertionError("unreachable: translated() aborts the call")
