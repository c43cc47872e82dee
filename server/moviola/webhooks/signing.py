"""Standard Webhooks signatures (the ``standardwebhooks`` package): ``webhook-id``, ``-timestamp``, ``-signature``.

A tenant with its own secrets in the auth file (``webhook_secrets``) has its webhooks signed with
those alone, so that no tenant learns a secret that verifies another's; every other tenant's are
signed with the server's ``--webhook-secret``. Every secret of the set signs (``whsec_`` + base64;
to rotate, add the new secret, move receivers to it, then drop the old one: receivers accept any
one of the signatures).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from standardwebhooks import Webhook


def _no_tenant_secrets(tenant: str) -> tuple[str, ...]:
    return ()


class Signer:
    def __init__(
        self,
        secrets: tuple[str, ...],
        tenant_secrets: Callable[[str], tuple[str, ...]] | None = None,
    ) -> None:
        self._hooks = [Webhook(secret) for secret in secrets]
        #: Read at each delivery, so that a SIGHUP that reloads the auth file rotates them.
        self._tenant_secrets = tenant_secrets or _no_tenant_secrets
        self._per_tenant = tenant_secrets is not None

    @property
    def may_sign(self) -> bool:
        """Whether any webhook can be signed (a server secret, or an auth file that may hold tenants')."""
        return bool(self._hooks) or self._per_tenant

    def signs_for(self, tenant: str) -> bool:
        return bool(self._hooks) or bool(self._tenant_secrets(tenant))

    def _for(self, tenant: str) -> list[Webhook]:
        own = self._tenant_secrets(tenant)
        return [Webhook(secret) for secret in own] if own else self._hooks

    def headers(self, delivery_id: str, timestamp: float, body: bytes, tenant: str = "") -> dict[str, str]:
        when = datetime.fromtimestamp(int(timestamp), tz=UTC)
        payload = body.decode()
        signatures = " ".join(hook.sign(delivery_id, when, payload) for hook in self._for(tenant))
        return {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": signatures,
        }
