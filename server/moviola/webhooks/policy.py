"""Where webhooks may go: http(s) to public addresses, unless ``--webhook-allow-host`` says otherwise.

A webhook is the one request whose target a caller names, so it must not become a probe of the
cluster's network (SSRF): every address its host resolves to must be public (not private,
loopback, link-local, multicast, reserved or unspecified), checked at submit and again at each
delivery (a name may resolve elsewhere later). Hosts (names or addresses) on the allow list skip it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from moviola.errors import InvalidRequest


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global or ip.is_multicast


class WebhookPolicy:
    def __init__(self, allow_hosts: tuple[str, ...] = ()) -> None:
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)

    async def check(self, url: str) -> None:
        """``InvalidRequest`` on ``webhook_url`` when ``url`` may not be called."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidRequest("webhook_url", "must be an http:// or https:// URL with a host")
        if host in self.allow_hosts:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise InvalidRequest("webhook_url", f"host {host} does not resolve ({exc})") from exc
        addresses = sorted({str(info[4][0]) for info in found})
        private = [a for a in addresses if _private(a)]
        if private:
            raise InvalidRequest(
                "webhook_url",
                f"{host} resolves to a non-public address ({private[0]}); "
                "the operator can allow it with --webhook-allow-host",
            )
