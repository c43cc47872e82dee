"""The lifecycle of a server process; gRPC health is derived from it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from moviola.errors import Unavailable


class State(enum.Enum):
    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


Listener = Callable[[bool], Awaitable[None]]


class Lifecycle:
    """The process state, plus whether a dependency (Redis) is down; serving means READY and not degraded."""

    def __init__(self) -> None:
        self.state = State.NEW
        #: Why a READY server cannot serve now (a dependency is down), or None.
        self.degraded: str | None = None
        self._listeners: list[Listener] = []

    @property
    def serving(self) -> bool:
        return self.state is State.READY and self.degraded is None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def _notify(self) -> None:
        for listener in self._listeners:
            await listener(self.serving)

    async def set(self, state: State) -> None:
        self.state = state
        await self._notify()

    async def set_degraded(self, reason: str | None) -> None:
        if reason != self.degraded:
            self.degraded = reason
            await self._notify()

    def require_ready(self) -> None:
        """Raise ``Unavailable`` unless the server can take new work."""
        if self.serving:
            return
        if self.state is State.READY:
            raise Unavailable(self.degraded or "unavailable", retry_after=1.0)
        if self.state in (State.NEW, State.LOADING):
            raise Unavailable("the server is starting: the model is loading", retry_after=5.0)
        raise Unavailable("the server is shutting down; use another replica", retry_after=1.0)
