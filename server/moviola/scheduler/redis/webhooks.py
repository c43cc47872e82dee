"""The Redis queue's webhook outbox: deliveries written by the event scripts, claimed by gateways.

``Keys.webhooks_due`` is a sorted set of delivery ids by the time they are due; ``Keys.webhook(id)``
the delivery (URL, tenant, the event). Claiming (``lua.CLAIM_WEBHOOKS``) moves a delivery's due
time a lease ahead in the same script, so two gateways never send it at once, and one that dies
leaves it to the next once the lease passes.
"""

from __future__ import annotations

import json

from moviola.scheduler.redis.connection import Connection, as_text, translated
from moviola.webhooks.outbox import Pending


class WebhookOutbox:
    def __init__(self, connection: Connection) -> None:
        self._redis, self._keys, self._scripts = connection.redis, connection.keys, connection.scripts

    @translated
    async def claim(self, now: float, lease: float, limit: int) -> list[Pending]:
        """Due deliveries, each claimed for ``lease`` seconds."""
        reply = await self._scripts.claim_webhooks(keys=[self._keys.webhooks_due], args=[now, lease, limit])
        found = []
        for delivery_id, flat in reply:
            fields = {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat), 2)}
            found.append(
                Pending(
                    id=as_text(delivery_id),
                    url=fields["url"],
                    tenant=fields["tenant"],
                    job_id=fields["job"],
                    sequence=int(fields["seq"]),
                    time=float(fields["t"]),
                    event=json.loads(fields["k"]),
                    attempts=int(fields["attempts"]),
                    first_at=float(fields["first"]),
                )
            )
        return found

    @translated
    async def delivered(self, pending: Pending) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.webhook(pending.id))
            await pipe.zrem(self._keys.webhooks_due, pending.id).execute()

    @translated
    async def retry(self, pending: Pending, at: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.webhook(pending.id), mapping={"attempts": pending.attempts})
            await pipe.zadd(self._keys.webhooks_due, {pending.id: at}).execute()
