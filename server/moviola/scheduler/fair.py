"""Fair share between tenants within one queue (one model, one priority): start-time fair queuing.

A job's tag is its tenant's previous tag, or the queue's virtual time if that is later, plus
1/weight; jobs start in tag order (ties: first come), and a start moves the virtual time up to
the job's tag. So a tenant that queued 1,000 jobs gets every other start while a second tenant
has work, not the next 1,000; a tenant alone gets every start; and a tenant whose jobs have all
left the queue is forgotten, so a cancelled backlog does not hold it back later.
The Redis queue runs the same rule in Lua (``redis/lua_functions.py``).
"""

from __future__ import annotations


class FairClock:
    def __init__(self) -> None:
        self.virtual = 0.0
        self._last: dict[str, float] = {}
        self._waiting: dict[str, int] = {}

    def enter(self, tenant: str, weight: float = 1.0) -> float:
        """The tag of a job ``tenant`` queues now."""
        tag = max(self.virtual, self._last.get(tenant, 0.0)) + 1 / weight
        self._last[tenant] = tag
        self._waiting[tenant] = self._waiting.get(tenant, 0) + 1
        return tag

    def leave(self, tenant: str, tag: float, *, started: bool) -> None:
        """A job left the queue: started (the clock moves to its tag), or cancelled or expired."""
        if started:
            self.virtual = max(self.virtual, tag)
        left = self._waiting.get(tenant, 1) - 1
        if left <= 0:
            self._waiting.pop(tenant, None)
            self._last.pop(tenant, None)
        else:
            self._waiting[tenant] = left
