"""Sends due webhook deliveries, retrying with exponential backoff and jitter for a bounded time.

Every gateway (and the embedded server) runs one; with Redis they share the outbox, each claiming
due deliveries for a lease, so a deliverer that dies mid-retry delays a delivery, never loses it.
A 2xx answer ends a delivery; anything else (or no answer in ``TIMEOUT`` seconds) is retried
until ``max_age`` seconds after its event, then given up on (logged, counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import replace

import httpx

from moviola.errors import InvalidRequest
from moviola.metrics import Metrics
from moviola.webhooks.outbox import Outbox, Pending
from moviola.webhooks.policy import WebhookPolicy
from moviola.webhooks.signing import Signer

log = logging.getLogger(__name__)

TIMEOUT = 10.0
#: A claimed delivery is left to other deliverers after this many seconds without an outcome.
LEASE = TIMEOUT + 5.0
POLL = 0.25
FIRST_RETRY = 0.5
LONGEST_RETRY = 60.0


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``FIRST_RETRY``, capped, with full jitter above half."""
    ceiling: float = min(LONGEST_RETRY, FIRST_RETRY * 2.0 ** max(0, attempts - 1))
    return ceiling * (0.5 + random.random() / 2)


class WebhookDeliverer:
    def __init__(
        self,
        outbox: Outbox,
        policy: WebhookPolicy,
        signer: Signer,
        *,
        max_age: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._outbox, self._policy, self._signer = outbox, policy, signer
        self._max_age = max_age
        self._metrics = metrics

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.webhook_attempts.labels(outcome).inc()

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            while True:
                try:
                    due = await self._outbox.claim_webhooks(time.time(), LEASE, 20)
                except Exception as exc:  # Redis away: the gateway's health says so; try again
                    log.warning("webhooks: cannot read the outbox: %s", exc)
                    due = []
                await asyncio.gather(*(self._send(client, pending) for pending in due))
                if not due:
                    await asyncio.sleep(POLL)

    async def _send(self, client: httpx.AsyncClient, pending: Pending) -> None:
        body = pending.body()
        try:
            await self._policy.check(pending.url)  # again: the name may resolve elsewhere now
            answer = await client.post(
                pending.url,
                content=body,
                headers=self._signer.headers(pending.id, time.time(), body, pending.tenant),
            )
            error = "" if answer.is_success else f"HTTP {answer.status_code}"
        except InvalidRequest as exc:
            return await self._give_up(pending, exc.message)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if not error:
            self._count("delivered")
            await self._outbox.webhook_delivered(pending)
            return None
        attempts = pending.attempts + 1
        if time.time() - pending.first_at > self._max_age:
            return await self._give_up(pending, error)
        self._count("retried")
        log.info(
            "webhook %s to %s failed (%s), attempt %d; retrying", pending.id, pending.url, error, attempts
        )
        await self._outbox.webhook_retry(replace(pending, attempts=attempts), time.time() + backoff(attempts))
        return None

    async def _give_up(self, pending: Pending, error: str) -> None:
        self._count("given_up")
        log.error(
            "webhook %s to %s given up after %d attempts: %s",
            pending.id,
            pending.url,
            pending.attempts + 1,
            error,
        )
        await self._outbox.webhook_delivered(pending)
