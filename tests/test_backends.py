"""One contract, two backends: the embedded in-process queue and Redis (gateway and worker in-process).

The same tests run against both; the Redis ones use a real redis-server.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from helpers import kinds
from stacks import Stack, block_first_job, events_of

from moviola.client import AsyncClient, InvalidArgument, NotFound, ResourceExhausted
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb


async def test_generate_streams_ordered_events_to_one_terminal(stack: Stack) -> None:
    events = [e async for e in stack.client.generate("a fox", num_inference_steps=4, num_frames=5)]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[:2] == ["queued", "started"]
    assert kinds(events)[-1] == "completed"
    assert [e.progress.step for e in events if e.WhichOneof("kind") == "progress"] == [1, 2, 3, 4]
    assert await events_of(stack.client, events[0].job_id, 3) == events[3:]
    job = await stack.client.get(events[0].job_id)
    assert job.state == pb.JOB_STATE_COMPLETED
    assert job.result.video_uri == events[-1].completed.video_uri


async def test_positions_follow_the_queue_and_cancelled_queued_jobs_never_run(stack: Stack) -> None:
    await block_first_job(stack)
    jobs = [await stack.client.submit(f"job {i}", num_inference_steps=1) for i in range(3)]
    assert [(await stack.client.get(j.id)).queue_position for j in jobs] == [1, 2, 3]
    await stack.client.cancel(jobs[1].id)
    assert [(await stack.client.get(j.id)).queue_position for j in (jobs[0], jobs[2])] == [1, 2]
    stack.pipeline.gate.set()
    last = await events_of(stack.client, jobs[2].id)
    assert [e.queued.position for e in last if e.WhichOneof("kind") == "queued"] == [3, 2, 1]
    assert kinds(last)[-1] == "completed"
    cancelled = await events_of(stack.client, jobs[1].id)
    assert kinds(cancelled)[-1] == "cancelled"
    assert "started" not in kinds(cancelled)


async def test_every_waiting_job_learns_its_new_position_when_the_queue_moves(stack: Stack) -> None:
    # Redis tells only the head of the queue at once on a start (announce_limit 1); the rest catch up.
    blocker = await block_first_job(stack)
    jobs = [await stack.client.submit(f"job {i}", num_inference_steps=2) for i in range(3)]
    stack.pipeline.reached.clear()
    await stack.client.cancel(blocker.id)  # jobs[0] starts and blocks too: the queue moved by one
    await asyncio.to_thread(stack.pipeline.reached.wait, 30)

    async def position_reaches(job_id: str, position: int) -> None:
        async for event in stack.client.watch(job_id):
            if event.HasField("queued") and event.queued.position == position:
                return

    await asyncio.wait_for(position_reaches(jobs[2].id, 2), 10)
    assert [(await stack.client.get(j.id)).queue_position for j in jobs[1:]] == [1, 2]
    stack.pipeline.gate.set()


async def test_cancel_running_job_stops_it_and_the_worker_takes_the_next(stack: Stack) -> None:
    running = await block_first_job(stack)
    behind = await stack.client.submit("next", num_inference_steps=1)
    await stack.client.cancel(running.id)
    events = await events_of(stack.client, running.id)
    assert kinds(events)[-1] == "cancelled"
    assert "phase_changed" in kinds(events)
    assert pb.PHASE_VAE_DECODING not in [e.phase_changed.phase for e in events if e.HasField("phase_changed")]
    stack.pipeline.gate.set()
    assert kinds(await events_of(stack.client, behind.id))[-1] == "completed"


async def test_interactive_jobs_overtake_batch_jobs(stack: Stack) -> None:
    await block_first_job(stack)
    batch = await stack.client.submit("batch", num_inference_steps=1, priority="batch")
    interactive = await stack.client.submit("interactive", num_inference_steps=1)
    assert (await stack.client.get(interactive.id)).queue_position == 1
    assert (await stack.client.get(batch.id)).queue_position == 2
    stack.pipeline.gate.set()
    b, i = await events_of(stack.client, batch.id), await events_of(stack.client, interactive.id)

    def started(events: list[pb.JobEvent]) -> int:
        return next(e.time.ToNanoseconds() for e in events if e.HasField("started"))

    assert started(i) < started(b)


async def test_same_idempotency_key_returns_the_same_job(stack: Stack) -> None:
    first = await stack.client.submit("once", num_inference_steps=1, idempotency_key="order-42")
    again = await stack.client.submit("once", num_inference_steps=1, idempotency_key="order-42")
    assert again.id == first.id
    assert kinds(await events_of(stack.client, first.id)).count("started") == 1


async def test_full_queue_is_resource_exhausted_with_a_retry_delay_and_queues_nothing(stack: Stack) -> None:
    await block_first_job(stack)
    accepted = [await stack.client.submit(f"fill {i}", num_inference_steps=1) for i in range(3)]
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SubmitJob(gen.SubmitJobRequest(request=pb.GenerateRequest(prompt="one too many")))
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(error.trailing_metadata() or ())
    assert int(trailers["grpc-retry-pushback-ms"]) > 0
    retry = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(trailers["grpc-status-details-bin"]).details[0].Unpack(retry)
    assert retry.retry_delay.ToNanoseconds() > 0
    with pytest.raises(ResourceExhausted) as typed:
        await stack.client.submit("still too many")
    assert typed.value.retry_after is not None
    stack.pipeline.gate.set()
    for job in accepted:
        assert kinds(await events_of(stack.client, job.id))[-1] == "completed"


async def test_job_that_cannot_start_within_its_max_wait_is_refused(stack: Stack) -> None:
    stack.pipeline.step_seconds = 0.1
    await stack.client.submit("learn how long jobs take", num_inference_steps=5)
    done = await stack.client.submit("and again", num_inference_steps=5)
    await events_of(stack.client, done.id)
    await block_first_job(stack)
    await stack.client.submit("waiting 1", num_inference_steps=5)
    await stack.client.submit("waiting 2", num_inference_steps=5)
    quick = AsyncClient(stack.address, timeout=0.4)
    try:
        with pytest.raises(ResourceExhausted) as info:
            await stack.client.submit("in a hurry", num_inference_steps=5, max_wait=0.4)
        assert "after its deadline or max_wait (0.4s)" in info.value.message
        assert info.value.retry_after is not None
        assert info.value.retry_after >= 1.0
        # SubmitJob returns at once: its own short call deadline does not bound when the job starts.
        patient = await quick.submit("not in a hurry", num_inference_steps=5)
        assert patient.state == pb.JOB_STATE_QUEUED
    finally:
        await quick.close()
        stack.pipeline.gate.set()


async def test_errors_name_the_field_or_the_job(stack: Stack) -> None:
    with pytest.raises(InvalidArgument) as info:
        await stack.client.submit("x", num_frames=6)
    assert info.value.field == "num_frames"
    with pytest.raises(NotFound):
        await stack.client.get("does-not-exist")
    with pytest.raises(NotFound):
        await events_of(stack.client, "does-not-exist")
    models = await stack.client.list_models()
    assert models[0].id == "tiny-wan2.2-t2v"
    assert models[0].ready
