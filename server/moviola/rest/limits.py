"""How large a request body the REST face reads: 413 in OpenAI's shape beyond it, before it is all read.

One limit for every route, set by the largest file a request carries (an uploaded video,
``validation.MAX_VIDEO_BYTES``) and room for its other fields; each field's own limit is checked
after (an ``input_reference`` over ``validation.MAX_IMAGE_BYTES`` is a 400 naming it). A body that
declares its length is refused from the header; a streamed one when its bytes pass the limit.
"""

from __future__ import annotations

from typing import Any

from moviola.rest.errors import BodyTooLarge, too_large
from moviola.validation import MAX_VIDEO_BYTES

MAX_BODY_BYTES = MAX_VIDEO_BYTES + 2 * 1024 * 1024
#: A body refused from its Content-Length is still read (and dropped) up to this many bytes, so that
#: the caller, still sending, reads the 413 instead of a reset connection; beyond, the connection closes.
DRAIN_BYTES = 2 * MAX_BODY_BYTES


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of body reach the app."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= DRAIN_BYTES:
                await _drain(receive)
            await too_large(self.limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)  # inside the route's read: its handler answers 413
            return message

        await self.app(scope, counted, send)


async def _drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
