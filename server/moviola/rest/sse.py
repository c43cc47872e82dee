"""Server-Sent Events framing, with keep-alive comments so that idle streams survive proxies.

A queued job can wait minutes without an event, and load balancers close idle connections (an AWS
ALB after 60 s by default); a comment line every ``KEEPALIVE`` seconds keeps the stream open and is
ignored by every SSE client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

#: Seconds of silence after which a stream sends a comment.
KEEPALIVE = 15.0
COMMENT = b": keep-alive\n\n"


async def with_keepalive(items: AsyncIterable[T], every: float = KEEPALIVE) -> AsyncIterator[T | None]:
    """``items``, with a ``None`` after each ``every`` seconds in which none came; waiting is never cancelled."""
    iterator = aiter(items)
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(iterator))
    finally:
        pending.cancel()


def frame(event_id: int, name: str, data: str) -> bytes:
    """One event: ``id`` (what Last-Event-ID resumes after), ``event`` and one line of ``data``."""
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()
