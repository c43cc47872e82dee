"""``POST /v1/videos/search``: SearchVideos on the REST face (``search.service``), the caller's videos only.

    {"text": "a red fox in snow", "top_k": 10}    by what the video shows (or its prompt)
    {"video_id": "..."}                           more like one of the caller's videos

Any key may search, within its tenant, as on gRPC; a server without ``--search-index`` answers 409
saying how to keep one.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request

from moviola.auth import caller as callers
from moviola.embed.service import JobInput, TextInput
from moviola.errors import InvalidRequest
from moviola.rest import openapi, schemas
from moviola.search.index import Hit
from moviola.search.service import MAX_TOP_K, Query, Searching, SearchQuery

KNOWN = frozenset({"text", "video_id", "top_k", "models"})


def _query(body: Any) -> SearchQuery:
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise InvalidRequest(unknown[0], f"is not a field of a search ({', '.join(sorted(KNOWN))})")
    text, video_id = body.get("text"), body.get("video_id")
    query: Query
    if isinstance(text, str) and text.strip() and video_id is None:
        query = TextInput(text)
    elif isinstance(video_id, str) and video_id and text is None:
        query = JobInput(video_id)
    else:
        raise InvalidRequest("text", "give text (words), or video_id (more like that video), not both")
    top_k, models = body.get("top_k", 0), body.get("models", [])
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 0 <= top_k <= MAX_TOP_K:
        raise InvalidRequest("top_k", f"must be a whole number from 1 to {MAX_TOP_K}")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequest("models", "must be a list of model ids")
    return SearchQuery(query=query, top_k=top_k, models=tuple(models))


def _hit(found: Hit) -> dict[str, Any]:
    return {
        "video_id": found.job_id,
        "score": found.score,
        "matched": found.matched,
        "model": found.model,
        "prompt": found.prompt,
        "created_at": int(found.created_at),
    }


class SearchRoutes:
    def __init__(self, search: Searching) -> None:
        self.search = search

    async def find(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise InvalidRequest("body", "is not JSON") from None
        hits, model = await self.search.search(_query(body), callers.current())
        return {"object": "list", "data": [_hit(h) for h in hits], "embedding_model": model}


_INT = {"type": "integer"}
QUERY = {
    "type": "object",
    "description": "One of text and video_id.",
    "properties": {
        "text": {"type": "string", "description": "Words: what the videos show, or their prompts."},
        "video_id": {"type": "string", "description": "One of your videos: videos like it."},
        "top_k": _INT | {"minimum": 0, "maximum": MAX_TOP_K, "description": "Hits at most; 0: 10."},
        "models": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Only videos of these models.",
        },
    },
    "additionalProperties": False,
}
HITS = schemas.list_of(
    {
        "type": "object",
        "required": ["video_id", "score", "matched", "model", "prompt", "created_at"],
        "properties": {
            "video_id": {"type": "string"},
            "score": {"type": "number", "description": "Cosine similarity, -1..1."},
            "matched": {"type": "string", "enum": ["video", "prompt"]},
            "model": {"type": "string"},
            "prompt": {"type": "string"},
            "created_at": _INT,
        },
    },
    ("embedding_model",),
    embedding_model={"type": "string"},
)


def add_routes(app: FastAPI, search: Searching) -> None:
    app.add_api_route(
        "/v1/videos/search",
        SearchRoutes(search).find,
        methods=["POST"],
        **openapi.declare(
            openapi.json_ok(HITS, "The hits, best first"), openapi.json_body(QUERY), (404, 409)
        ),
    )
