"""The browser console: the static files of ``moviola/console/``, served at ``/`` of the HTTP port.

Plain JavaScript modules, one stylesheet and one page, shipped in the package: no build step, no
CDN, nothing fetched from elsewhere. The files are read once (they are small) and answered from
memory, each with a strict Content-Security-Policy: scripts and styles from this origin only (no
inline ones), Trusted Types required for every HTML sink (so the page cannot parse a string as
HTML), images and videos from this origin or from the page's own ``blob:``/``data:`` URLs.

The page calls only the public REST face, with the key its user typed, checked like any caller's
(``rest/auth.py``). The files themselves need no key, so ``Console`` sits in front of the key check
and answers only GET and HEAD of its own paths; every other request passes through unchanged.
``--no-console`` leaves it out.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any

#: The shipped files.
FOLDER = Path(__file__).resolve().parent.parent / "console"
#: Where the page is; the other files are under ``/console/``.
PAGE = "/"
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Posters and videos are fetched with the key and shown as blob: URLs; previews arrive as data.
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    # Revalidated on every load (the ETag answers 304), so that a new server's files are used at once.
    (b"cache-control", b"no-cache"),
)
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}


class _File:
    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.type = f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
        self.etag = f'"{hashlib.sha256(self.body).hexdigest()[:16]}"'.encode()


def files(folder: Path = FOLDER) -> dict[str, _File]:
    """Each served path and its file: ``/`` the page, ``/console/NAME`` the rest."""
    found = {f"/console/{p.name}": _File(p) for p in sorted(folder.iterdir()) if p.is_file()}
    found[PAGE] = found.pop("/console/index.html")
    return found


class Console:
    """ASGI middleware: GET and HEAD of the console's paths answered here; everything else goes to ``app``."""

    def __init__(self, app: Any, folder: Path = FOLDER) -> None:
        self.app = app
        self._files = files(folder)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        found = self._files.get(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        fresh = any(k == b"if-none-match" and found.etag in v for k, v in scope["headers"])
        headers = [*HEADERS, (b"etag", found.etag)]
        if fresh:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers += [
            (b"content-type", found.type.encode()),
            (b"content-length", str(len(found.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else found.body})
