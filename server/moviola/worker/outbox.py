"""The outbox of a running job: its events, published in order and in batches.

Publishing is a round trip to the job queue (one Lua script call on Redis)
whether it carries one event or ten, and a pipeline emits its events in
bursts (a phase change and a step, the last step and a phase change). So an
event waits up to ``linger`` seconds for others to join it, as Kafka's
``linger.ms`` does; events that arrive while a batch is being sent go in the
next one, at once. The events still waiting when the job ends are not sent
here: ``close`` hands them back to travel with the job's terminal event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from moviola.errors import LeaseLost
from moviola.jobs import EventKind

log = logging.getLogger(__name__)

#: Default seconds an event waits for others to share its round trip: far below a denoising step.
LINGER = 0.005


class Outbox:
    def __init__(
        self,
        send: Callable[[list[EventKind]], Awaitable[None]],
        on_lease_lost: Callable[[], None],
        *,
        linger: float = LINGER,
    ) -> None:
        self._send = send
        self._on_lease_lost = on_lease_lost
        self._linger = linger
        self._loop = asyncio.get_running_loop()
        self._waiting: list[EventKind] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._closed = False

    def put(self, kind: EventKind) -> None:
        """Queue an event (on the loop's thread); it is sent within ``linger`` seconds of the first waiting one.

        After ``close`` nothing is sent any more (a cancelled pipeline thread may still emit).
        """
        self._waiting.append(kind)
        if self._timer is None and self._sending is None and not self._closed:
            self._timer = self._loop.call_later(self._linger, self._flush)

    def _flush(self) -> None:
        self._timer = None
        batch, self._waiting = self._waiting, []
        self._sending = self._loop.create_task(self._send_batch(batch))

    async def _send_batch(self, batch: list[EventKind]) -> None:
        try:
            await self._send(batch)
        except LeaseLost:
            self._on_lease_lost()
        except Exception:  # progress is best-effort; the terminal event is not
            log.exception("could not publish %d events", len(batch))
        finally:
            self._sending = None
            if self._waiting and not self._closed:
                self._flush()  # these waited for the round trip already

    async def close(self) -> list[EventKind]:
        """Stop sending; wait for the batch in flight; return the events not sent, in order."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._sending is not None:
            await asyncio.shield(self._sending)
        waiting, self._waiting = self._waiting, []
        return waiting
