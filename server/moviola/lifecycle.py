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


Listener = Callable[[State], Awaitable[None]]


class Lifecycle:
    def __init__(self) -> None:
        self.state = State.NEW
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def set(self, state: State) -> None:
        self.state = state
        for listener in self._listeners:
            await listener(state)

    def require_ready(self) -> None:
        """Raise ``Unavailable`` unless the server can take new work."""
        if self.state is State.READY:
            return
        if self.state in (State.NEW, State.LOADING):
            raise Unavailable("the server is starting: the model is loading", retry_after=5.0)
        raise Unavailable("the server is shutting down; use another replica", retry_after=1.0)
