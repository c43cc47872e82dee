"""``moviola.v1.GenerationService``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import grpc

from moviola.api import convert
from moviola.api.status import translated
from moviola.gateway import Gateway
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]


def _traceparent(context: Context) -> str:
    value = dict(context.invocation_metadata() or ()).get("traceparent", "")
    return value if isinstance(value, str) else value.decode()


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @contextmanager
    def _streaming(self, method: str) -> Iterator[None]:
        metrics = self._gateway.metrics
        if metrics is None:
            yield
            return
        gauge = metrics.active_streams.labels(method)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[gen.GenerateResponse]:
        # A caller that goes away cancels this stream, never the job.
        with self._streaming("Generate"):
            async with translated(context):
                draft = convert.draft(request, _traceparent(context))
                record, _ = await self._gateway.submit(draft, max_wait=context.time_remaining())
                async for event in self._gateway.watch(record.id, model=record.model):
                    yield gen.GenerateResponse(event=convert.event(event))

    async def SubmitJob(self, request: gen.SubmitJobRequest, context: Context) -> gen.SubmitJobResponse:
        async with translated(context):
            draft = convert.draft(request.request, _traceparent(context))
            record, created = await self._gateway.submit(draft, max_wait=context.time_remaining())
        return gen.SubmitJobResponse(job=convert.job(record), created=created)

    async def WatchJob(
        self, request: gen.WatchJobRequest, context: Context
    ) -> AsyncIterator[gen.WatchJobResponse]:
        with self._streaming("WatchJob"):
            async with translated(context):
                async for event in self._gateway.watch(request.job_id, request.after_sequence):
                    yield gen.WatchJobResponse(event=convert.event(event))

    async def GetJob(self, request: gen.GetJobRequest, context: Context) -> gen.GetJobResponse:
        async with translated(context):
            record = await self._gateway.get(request.job_id)
        return gen.GetJobResponse(job=convert.job(record))

    async def CancelJob(self, request: gen.CancelJobRequest, context: Context) -> gen.CancelJobResponse:
        async with translated(context):
            record = await self._gateway.cancel(request.job_id)
        return gen.CancelJobResponse(job=convert.job(record))

    async def ListModels(self, request: gen.ListModelsRequest, context: Context) -> gen.ListModelsResponse:
        async with translated(context):
            models = await self._gateway.models()
        return gen.ListModelsResponse(models=[convert.model(status) for status in models])

    async def ListDeadLetters(
        self, request: gen.ListDeadLettersRequest, context: Context
    ) -> gen.ListDeadLettersResponse:
        async with translated(context):
            letters = await self._gateway.dead_letters()
        return gen.ListDeadLettersResponse(dead_letters=[convert.dead_letter(d) for d in letters])

    async def RequeueJob(self, request: gen.RequeueJobRequest, context: Context) -> gen.RequeueJobResponse:
        async with translated(context):
            record = await self._gateway.requeue(request.job_id)
        return gen.RequeueJobResponse(job=convert.job(record))
