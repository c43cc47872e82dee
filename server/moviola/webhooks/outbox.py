"""Where deliveries wait: the queue records one with each wanted event, in the same step as the event.

The memory queue keeps them in the process; the Redis queue in a sorted set by due time and a
hash per delivery, written by the script that publishes the event, so a delivery exists exactly
when its event does. Deliverers claim due ones for a lease; one that dies mid-retry leaves them
to be claimed again once the lease passes (at least once; receivers dedupe by ``webhook-id``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class Pending:
    """One delivery: an event of a job, to one URL."""

    id: str
    url: str
    tenant: str
    job_id: str
    sequence: int
    time: float
    #: The event as the Redis codec writes it (``{"type": "completed", ...}``).
    event: dict[str, Any]
    attempts: int = 0
    first_at: float = 0.0

    @property
    def kind(self) -> str:
        return str(self.event.get("type", ""))

    def body(self) -> bytes:
        """What is POSTed: ``{"type": "job.completed", "timestamp": ..., "data": {...}}``."""
        data = {"job_id": self.job_id, "sequence": self.sequence, "event": self.event}
        return json.dumps({"type": f"job.{self.kind}", "timestamp": self.time, "data": data}).encode()


class Outbox(Protocol):
    async def claim_webhooks(self, now: float, lease: float, limit: int) -> list[Pending]:
        """Up to ``limit`` deliveries due by ``now``, each kept from other deliverers for ``lease`` seconds."""
        ...

    async def webhook_delivered(self, pending: Pending) -> None:
        """Done with it (delivered, or given up on)."""

    async def webhook_retry(self, pending: Pending, at: float) -> None:
        """Try again at ``at`` (``pending.attempts`` already counts the failed one)."""


class MemoryOutbox:
    """The embedded server's outbox: deliveries in this process (they end with it, like its jobs)."""

    def __init__(self) -> None:
        self._due: dict[str, tuple[float, Pending]] = {}

    def add(self, pending: Pending) -> None:
        self._due[pending.id] = (pending.time, replace(pending, first_at=pending.time))

    async def claim_webhooks(self, now: float, lease: float, limit: int) -> list[Pending]:
        due = sorted((at, p.id) for at, p in self._due.values() if at <= now)[:limit]
        claimed = []
        for _, delivery_id in due:
            pending = self._due[delivery_id][1]
            self._due[delivery_id] = (now + lease, pending)
            claimed.append(pending)
        return claimed

    async def webhook_delivered(self, pending: Pending) -> None:
        self._due.pop(pending.id, None)

    async def webhook_retry(self, pending: Pending, at: float) -> None:
        self._due[pending.id] = (at, pending)
