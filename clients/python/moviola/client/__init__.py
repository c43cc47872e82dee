"""Python client for Moviola.

    from moviola.client import Client

    with Client("127.0.0.1:50051") as client:
        for event in client.generate("a red fox running through snow", num_frames=17):
            print(event)

``AsyncClient`` offers the same methods for asyncio. Neither needs torch.
"""

from moviola.client._aio import AsyncClient
from moviola.client._core import Tls
from moviola.client._request import EmbedOptions, RequestOptions, make_request
from moviola.client._sync import Client
from moviola.client.errors import (
    FailedPrecondition,
    InvalidArgument,
    MoviolaError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "EmbedOptions",
    "FailedPrecondition",
    "InvalidArgument",
    "MoviolaError",
    "NotFound",
    "PermissionDenied",
    "RequestOptions",
    "ResourceExhausted",
    "Tls",
    "Unauthenticated",
    "Unavailable",
    "make_request",
]
