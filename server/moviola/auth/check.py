"""The one key check both faces run: ``authorization: Bearer KEY`` against the auth file.

The gRPC interceptor (``api/auth.py``) passes the call's ``authorization`` metadata, the REST
middleware (``rest/auth.py``) the request's ``Authorization`` header; each says which it read,
so that the message tells the caller what to send:

    check = KeyCheck(AuthFile(path))
    caller = check.identify(value, carrier="header")   # or raises Unauthenticated
"""

from __future__ import annotations

from moviola.auth.caller import Caller
from moviola.auth.keys import AuthFile
from moviola.errors import Unauthenticated

#: Longest authorization value read (a key is 61 characters).
MAX_AUTHORIZATION = 256


def bearer(value: str | bytes | None) -> str | None:
    """The key in ``Bearer KEY``; None when absent or not a bearer value."""
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, token = text[:MAX_AUTHORIZATION].partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class KeyCheck:
    def __init__(self, keys: AuthFile) -> None:
        self._keys = keys

    def identify(self, authorization: str | bytes | None, *, carrier: str) -> Caller:
        """The caller whose key ``authorization`` holds; ``Unauthenticated`` saying why not.

        ``carrier``: what the value came in ("metadata" on gRPC, "header" on HTTP).
        """
        token = bearer(authorization)
        if token is None:
            raise Unauthenticated(
                f"this server needs an API key: send the {carrier} 'authorization: Bearer KEY' (--api-key)"
            )
        caller = self._keys.verify(token)
        if caller is None:
            raise Unauthenticated("the API key is not valid (unknown, revoked or mistyped)")
        return caller
