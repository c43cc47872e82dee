"""The Redis queue's webhook outbox: deliveries written by the event scripts, claimed by gateways.

``<prefix>webhooks:due`` is a sorted set of delivery ids by the time they are due;
``<prefix>webhook:<id>`` the delivery (URL, tenant, the event). Claiming moves a delivery's due
time a lease ahead in the same script, so two gateways never send it at once, and one that dies
leaves it to the next once the lease passes.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moviola.scheduler.redis.connection import RedisBase, as_text, translated
from moviola.webhooks.outbox import Pending

# KEYS: due set. ARGV: now, lease, most, prefix. Due deliveries, each pushed a lease ahead; {id, fields...}.
CLAIM = r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(due) do
  local fields = redis.call('HGETALL', ARGV[4] .. 'webhook:' .. id)
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
    table.insert(claimed, {id, fields})
  end
end
return claimed
"""


class WebhookSide(RedisBase):
    @translated
    async def claim_webhooks(self, now: float, lease: float, limit: int) -> list[Pending]:
        reply = await self._claim_script(keys=[self._due], args=[now, lease, limit, self.keys.prefix])
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
    async def webhook_delivered(self, pending: Pending) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._delivery(pending.id))
            await pipe.zrem(self._due, pending.id).execute()

    @translated
    async def webhook_retry(self, pending: Pending, at: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._delivery(pending.id), mapping={"attempts": pending.attempts})
            await pipe.zadd(self._due, {pending.id: at}).execute()

    @functools.cached_property
    def _claim_script(self) -> Any:
        return self.redis.register_script(CLAIM)

    @property
    def _due(self) -> str:
        return f"{self.keys.prefix}webhooks:due"

    def _delivery(self, delivery_id: str) -> str:
        return f"{self.keys.prefix}webhook:{delivery_id}"
