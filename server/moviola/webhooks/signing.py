"""Standard Webhooks signatures (the ``standardwebhooks`` package): ``webhook-id``, ``-timestamp``, ``-signature``.

The server signs with every secret of ``--webhook-secret`` (``whsec_`` + base64; repeat the option
to rotate: receivers accept any one of the signatures, so add the new secret, move receivers to
it, then drop the old one).
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook


class Signer:
    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._hooks = [Webhook(secret) for secret in secrets]

    @property
    def enabled(self) -> bool:
        return bool(self._hooks)

    def headers(self, delivery_id: str, timestamp: float, body: bytes) -> dict[str, str]:
        when = datetime.fromtimestamp(int(timestamp), tz=UTC)
        payload = body.decode()
        signatures = " ".join(hook.sign(delivery_id, when, payload) for hook in self._hooks)
        return {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": signatures,
        }
