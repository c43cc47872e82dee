"""``moviola.v1.GenerationService``: protos in, one ``JobService`` call, protos out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from moviola import messages
from moviola.api.status import translated
from moviola.auth import caller as callers
from moviola.errors import InvalidRequest
from moviola.recent import Recent
from moviola.service import EventView, JobService, JobView
from moviola.storage.base import Variant
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb

Context = grpc.aio.ServicerContext[object, object]


def _traceparent(context: Context) -> str:
    value = dict(context.invocation_metadata() or ()).get("traceparent", "")
    return value if isinstance(value, str) else value.decode()


VARIANTS = {
    gen.VIDEO_VARIANT_UNSPECIFIED: Variant.VIDEO,
    gen.VIDEO_VARIANT_VIDEO: Variant.VIDEO,
    gen.VIDEO_VARIANT_THUMBNAIL: Variant.THUMBNAIL,
    gen.VIDEO_VARIANT_SPRITESHEET: Variant.SPRITESHEET,
}


def _event(view: EventView) -> pb.JobEvent:
    return messages.event(view.event, view.links)


def _job(view: JobView) -> pb.Job:
    return messages.job(view.record, view.links)


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, service: JobService) -> None:
        self._service = service
        # Each event's message, made once for all the streams that send it.
        self._generated: Recent[EventView, gen.GenerateResponse] = Recent(
            lambda view: gen.GenerateResponse(event=_event(view))
        )
        self._watched: Recent[EventView, gen.WatchJobResponse] = Recent(
            lambda view: gen.WatchJobResponse(event=_event(view))
        )

    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[gen.GenerateResponse]:
        # A caller that goes away cancels this stream, never the job.
        # The caller waits on this stream: its deadline bounds the job's start too.
        async with translated(context):
            draft = messages.draft(request, _traceparent(context))
            stream = self._service.generate(
                draft, caller_waits=context.time_remaining(), caller=callers.current()
            )
            async for view in stream:
                yield self._generated(view)

    async def SubmitJob(self, request: gen.SubmitJobRequest, context: Context) -> gen.SubmitJobResponse:
        async with translated(context):
            draft = messages.draft(request.request, _traceparent(context))
            # SubmitJob returns at once: its own deadline says nothing about when the job may start.
            job, created = await self._service.submit(draft, caller=callers.current())
        return gen.SubmitJobResponse(job=messages.job(job.record), created=created)

    async def WatchJob(
        self, request: gen.WatchJobRequest, context: Context
    ) -> AsyncIterator[gen.WatchJobResponse]:
        async with translated(context):
            async for view in self._service.watch(
                request.job_id, request.after_sequence, caller=callers.current()
            ):
                yield self._watched(view)

    async def GetJob(self, request: gen.GetJobRequest, context: Context) -> gen.GetJobResponse:
        async with translated(context):
            return gen.GetJobResponse(job=_job(await self._service.show(request.job_id, callers.current())))

    async def CancelJob(self, request: gen.CancelJobRequest, context: Context) -> gen.CancelJobResponse:
        async with translated(context):
            job = await self._service.cancel(request.job_id, callers.current())
        return gen.CancelJobResponse(job=messages.job(job.record))

    async def ListModels(self, request: gen.ListModelsRequest, context: Context) -> gen.ListModelsResponse:
        async with translated(context):
            models = await self._service.models(callers.current())
        return gen.ListModelsResponse(models=[messages.model(status) for status in models])

    async def ListDeadLetters(
        self, request: gen.ListDeadLettersRequest, context: Context
    ) -> gen.ListDeadLettersResponse:
        async with translated(context):
            letters = await self._service.dead_letters(callers.current())
        return gen.ListDeadLettersResponse(dead_letters=[messages.dead_letter(d) for d in letters])

    async def RequeueJob(self, request: gen.RequeueJobRequest, context: Context) -> gen.RequeueJobResponse:
        async with translated(context):
            job = await self._service.requeue(request.job_id, callers.current())
        return gen.RequeueJobResponse(job=messages.job(job.record))

    async def ExtendJob(self, request: gen.ExtendJobRequest, context: Context) -> gen.ExtendJobResponse:
        async with translated(context):
            job, created = await self._service.extend(
                request.job_id,
                request.prompt,
                f"{request.seconds:g}" if request.seconds else "",
                idempotency_key=request.idempotency_key,
                caller=callers.current(),
            )
        return gen.ExtendJobResponse(job=messages.job(job.record), created=created)

    async def EditJob(self, request: gen.EditJobRequest, context: Context) -> gen.EditJobResponse:
        async with translated(context):
            job, created = await self._service.edit(
                request.job_id,
                request.prompt,
                request.strength if request.HasField("strength") else None,
                idempotency_key=request.idempotency_key,
                caller=callers.current(),
            )
        return gen.EditJobResponse(job=messages.job(job.record), created=created)

    async def CreateCharacter(
        self, request: gen.CreateCharacterRequest, context: Context
    ) -> gen.CreateCharacterResponse:
        async with translated(context):
            made = await self._service.characters.create(request.name, request.video, callers.current())
        return gen.CreateCharacterResponse(character=messages.character(made))

    async def GetCharacter(
        self, request: gen.GetCharacterRequest, context: Context
    ) -> gen.GetCharacterResponse:
        async with translated(context):
            found = await self._service.characters.get(request.character_id, callers.current())
        return gen.GetCharacterResponse(character=messages.character(found))

    async def DeleteCharacter(
        self, request: gen.DeleteCharacterRequest, context: Context
    ) -> gen.DeleteCharacterResponse:
        async with translated(context):
            gone = await self._service.characters.delete(request.character_id, callers.current())
        return gen.DeleteCharacterResponse(character=messages.character(gone))

    async def DownloadVideo(
        self, request: gen.DownloadVideoRequest, context: Context
    ) -> AsyncIterator[gen.DownloadVideoResponse]:
        async with translated(context):
            if request.variant not in VARIANTS:
                await self._service.get(request.job_id, callers.current())  # NOT_FOUND before the variant
                raise InvalidRequest("variant", f"unknown variant {request.variant}")
            download = await self._service.download(
                request.job_id, VARIANTS[request.variant], callers.current()
            )
            header = True
            async for chunk in download.chunks:
                if header:  # the first chunk says what follows
                    yield gen.DownloadVideoResponse(
                        data=chunk, size_bytes=download.size_bytes, mime_type=download.mime_type
                    )
                    header = False
                else:
                    yield gen.DownloadVideoResponse(data=chunk)
            if header:  # an empty file: the header alone
                yield gen.DownloadVideoResponse(size_bytes=download.size_bytes, mime_type=download.mime_type)

    async def ListJobs(self, request: gen.ListJobsRequest, context: Context) -> gen.ListJobsResponse:
        async with translated(context):
            state = messages.job_state(request.state)
            jobs, token = await self._service.list_jobs(
                callers.current(), page_size=request.page_size, page_token=request.page_token, state=state
            )
            return gen.ListJobsResponse(jobs=[_job(j) for j in jobs], next_page_token=token)
