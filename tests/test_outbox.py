"""Unit tests of a running job's outbox (batched event publishing) and of the worker's use of it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fakes import ScriptedPipeline
from helpers import REQUEST

from moviola.errors import LeaseLost
from moviola.jobs import (
    Completed,
    EventKind,
    Phase,
    PhaseChanged,
    Progress,
    Queued,
    Started,
)
from moviola.scheduler.base import Assignment
from moviola.scheduler.memory import MemoryJobQueue
from moviola.storage.local import LocalStorage
from moviola.worker.outbox import Outbox
from moviola.worker.runner import Worker


def phase(p: Phase) -> PhaseChanged:
    return PhaseChanged(p)


class Sender:
    """Records batches; a batch can be held in flight until ``release``."""

    def __init__(self, *, hold: bool = False, error: Exception | None = None) -> None:
        self.batches: list[list[EventKind]] = []
        self.sent = asyncio.Condition()
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        self.error = error

    async def __call__(self, batch: list[EventKind]) -> None:
        async with self.sent:
            self.batches.append(batch)
            self.sent.notify_all()
        await self.gate.wait()
        if self.error is not None:
            raise self.error

    async def wait_batches(self, count: int) -> None:
        async with self.sent:
            await asyncio.wait_for(self.sent.wait_for(lambda: len(self.batches) >= count), 5)


async def test_events_put_together_go_out_as_one_batch_in_order() -> None:
    send = Sender()
    outbox = Outbox(send, lambda: None, linger=0)
    events: list[EventKind] = [phase(Phase.TEXT_ENCODING), phase(Phase.DENOISING), Queued(1)]
    for event in events:
        outbox.put(event)
    await send.wait_batches(1)
    assert send.batches == [events]
    assert await outbox.close() == []


async def test_events_that_arrive_during_a_send_go_in_the_next_batch() -> None:
    send = Sender(hold=True)
    outbox = Outbox(send, lambda: None, linger=0)
    outbox.put(phase(Phase.TEXT_ENCODING))
    await send.wait_batches(1)  # in flight, held
    outbox.put(phase(Phase.DENOISING))
    outbox.put(phase(Phase.VAE_DECODING))
    send.gate.set()
    await send.wait_batches(2)
    assert send.batches[1] == [phase(Phase.DENOISING), phase(Phase.VAE_DECODING)]


async def test_close_waits_for_the_batch_in_flight_and_returns_what_was_not_sent() -> None:
    send = Sender(hold=True)
    outbox = Outbox(send, lambda: None, linger=0)
    outbox.put(phase(Phase.TEXT_ENCODING))
    await send.wait_batches(1)
    outbox.put(phase(Phase.DENOISING))
    closing = asyncio.create_task(outbox.close())
    await asyncio.sleep(0)  # let close start waiting: it must not return while a batch is in flight
    assert not closing.done()
    send.gate.set()
    assert await closing == [phase(Phase.DENOISING)]
    assert len(send.batches) == 1


async def test_an_event_waits_for_the_linger_and_is_handed_back_at_close() -> None:
    send = Sender()
    outbox = Outbox(send, lambda: None, linger=60)
    outbox.put(phase(Phase.TEXT_ENCODING))
    outbox.put(phase(Phase.DENOISING))
    assert await outbox.close() == [phase(Phase.TEXT_ENCODING), phase(Phase.DENOISING)]
    assert send.batches == []


async def test_a_lost_lease_is_reported() -> None:
    lost = asyncio.Event()
    outbox = Outbox(Sender(error=LeaseLost("taken over")), lost.set, linger=0)
    outbox.put(phase(Phase.TEXT_ENCODING))
    await asyncio.wait_for(lost.wait(), 5)
    assert await outbox.close() == []


class CountingQueue(MemoryJobQueue):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[list[EventKind]] = []  # by the worker's outbox, not by finish
        self.finished_with: list[list[EventKind]] = []
        self._finishing = False

    async def publish_many(self, job_id: str, kinds: list[EventKind], *, attempt: int | None = None) -> None:
        if not self._finishing:
            self.published.append(list(kinds))
        await super().publish_many(job_id, kinds, attempt=attempt)

    async def finish(
        self,
        assignment: Assignment,
        kind: EventKind,
        run_seconds: float,
        *,
        preceding: Sequence[EventKind] = (),
    ) -> None:
        self.finished_with.append([*preceding, kind])
        self._finishing = True
        await super().finish(assignment, kind, run_seconds, preceding=preceding)
        self._finishing = False


async def test_a_short_job_publishes_everything_with_its_terminal_event(tmp_path: Path) -> None:
    queue = CountingQueue()
    worker = Worker(queue, ScriptedPipeline(), LocalStorage(tmp_path), linger=60)
    record, _ = await queue.submit(replace(REQUEST, model=worker.model, num_inference_steps=2))
    await worker.run_job(await queue.take(worker.model))
    assert queue.published == []  # no round trip before the end
    events = [event.kind async for event in queue.watch(record.id)]
    assert [type(kind) for kind in events] == [
        Queued,
        Started,
        PhaseChanged,
        PhaseChanged,
        Progress,
        Progress,
        PhaseChanged,
        PhaseChanged,
        PhaseChanged,
        Completed,
    ]
    assert queue.finished_with == [events[2:]]
    phases = [kind.phase for kind in events if isinstance(kind, PhaseChanged)]
    assert phases == [
        Phase.TEXT_ENCODING,
        Phase.DENOISING,
        Phase.VAE_DECODING,
        Phase.VIDEO_ENCODING,
        Phase.STORING,
    ]
