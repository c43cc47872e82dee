"""``moviola.v1.GenerationService``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from moviola.api import convert
from moviola.api.status import translated
from moviola.service import JobService
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]


def _traceparent(context: Context) -> str:
    value = dict(context.invocation_metadata() or ()).get("traceparent", "")
    return value if isinstance(value, str) else value.decode()


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, service: JobService) -> None:
        self._service = service

    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[gen.GenerateResponse]:
        # A caller that goes away cancels this stream, never the job.
        # The caller waits on this stream: its deadline bounds the job's start too.
        async with translated(context):
            draft = convert.draft(request, _traceparent(context))
            record, _ = await self._service.submit(draft, caller_waits=context.time_remaining())
            async for event in self._service.watch(record.id, model=record.model):
                yield gen.GenerateResponse(event=convert.event(event))

    async def SubmitJob(self, request: gen.SubmitJobRequest, context: Context) -> gen.SubmitJobResponse:
        async with translated(context):
            draft = convert.draft(request.request, _traceparent(context))
            # SubmitJob returns at once: its own deadline says nothing about when the job may start.
            record, created = await self._service.submit(draft)
        return gen.SubmitJobResponse(job=convert.job(record), created=created)

    async def WatchJob(
        self, request: gen.WatchJobRequest, context: Context
    ) -> AsyncIterator[gen.WatchJobResponse]:
        async with translated(context):
            async for event in self._service.watch(request.job_id, request.after_sequence):
                yield gen.WatchJobResponse(event=convert.event(event))

    async def GetJob(self, request: gen.GetJobRequest, context: Context) -> gen.GetJobResponse:
        async with translated(context):
            record = await self._service.get(request.job_id)
        return gen.GetJobResponse(job=convert.job(record))

    async def CancelJob(self, request: gen.CancelJobRequest, context: Context) -> gen.CancelJobResponse:
        async with translated(context):
            record = await self._service.cancel(request.job_id)
        return gen.CancelJobResponse(job=convert.job(record))

    async def ListModels(self, request: gen.ListModelsRequest, context: Context) -> gen.ListModelsResponse:
        async with translated(context):
            models = await self._service.models()
        return gen.ListModelsResponse(models=[convert.model(status) for status in models])

    async def ListDeadLetters(
        self, request: gen.ListDeadLettersRequest, context: Context
    ) -> gen.ListDeadLettersResponse:
        async with translated(context):
            letters = await self._service.dead_letters()
        return gen.ListDeadLettersResponse(dead_letters=[convert.dead_letter(d) for d in letters])

    async def RequeueJob(self, request: gen.RequeueJobRequest, context: Context) -> gen.RequeueJobResponse:
        async with translated(context):
            record = await self._service.requeue(request.job_id)
        return gen.RequeueJobResponse(job=convert.job(record))
