"""``moviola.v1.SearchService``: protos in, ``VideoSearch`` call, protos out."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from moviola.api.status import translated
from moviola.auth import caller as callers
from moviola.embed.service import ImageInput, JobInput, TextInput, VideoInput
from moviola.errors import InvalidRequest
from moviola.messages import timestamp
from moviola.search.index import Hit
from moviola.search.service import Query, Searching, SearchQuery
from moviola.v1 import search_pb2 as pb
from moviola.v1 import search_pb2_grpc


def _query(request: pb.SearchVideosRequest) -> Query:
    match request.WhichOneof("query"):
        case "text":
            if not request.text.strip():
                raise InvalidRequest("text", "is empty")
            return TextInput(request.text)
        case "image":
            return ImageInput(request.image)
        case "video":
            if not request.video:
                raise InvalidRequest("video", "is empty")
            return VideoInput(request.video)
        case "job_id":
            return JobInput(request.job_id)
    raise InvalidRequest("query", "set one of text, image, video or job_id")


def _seconds(request: pb.SearchVideosRequest, name: str) -> float | None:
    if not request.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(request, name)
    try:
        return stamp.ToNanoseconds() / 1e9
    except ValueError as exc:  # seconds outside years 1..9999, or nanos outside 0..999,999,999
        raise InvalidRequest(name, str(exc)) from exc


def query(request: pb.SearchVideosRequest) -> SearchQuery:
    return SearchQuery(
        query=_query(request),
        top_k=request.top_k,
        models=tuple(request.models),
        created_after=_seconds(request, "created_after"),
        created_before=_seconds(request, "created_before"),
    )


def hit(found: Hit) -> pb.VideoHit:
    return pb.VideoHit(
        job_id=found.job_id,
        score=found.score,
        matched=found.matched,
        model=found.model,
        prompt=found.prompt,
        create_time=timestamp(found.created_at),
    )


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, search: Searching) -> None:
        self._search = search

    async def SearchVideos(
        self, request: pb.SearchVideosRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.SearchVideosResponse:
        async with translated(context):
            hits, model = await self._search.search(query(request), callers.current())
            return pb.SearchVideosResponse(hits=[hit(h) for h in hits], embedding_model=model)
        raise AssertionError("unreachable: translated() aborts the call")
