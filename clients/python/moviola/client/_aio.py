"""The asyncio client; the same methods as ``Client``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Unpack

import grpc

from moviola.client._request import EmbedOptions, RequestOptions, make_embed_request, make_request
from moviola.client._sync import DEFAULT_SERVER, IDEMPOTENT_SERVICE_CONFIG, SERVICE_CONFIG, channel_options
from moviola.client.errors import translate
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc, generation_pb2_grpc
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb


class AsyncClient:
    def __init__(self, target: str = DEFAULT_SERVER, *, timeout: float | None = None) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=channel_options(SERVICE_CONFIG))
        self._keyed = grpc.aio.insecure_channel(target, options=channel_options(IDEMPOTENT_SERVICE_CONFIG))
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._keyed_stub = generation_pb2_grpc.GenerationServiceStub(self._keyed)
        self._embedding = embedding_pb2_grpc.EmbeddingServiceStub(self._channel)
        self._timeout = timeout

    def _submitter(self, request: pb.GenerateRequest) -> generation_pb2_grpc.GenerationServiceAsyncStub:
        return self._keyed_stub if request.idempotency_key else self._stub

    async def generate(
        self,
        prompt: str | pb.GenerateRequest,
        *,
        timeout: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> AsyncIterator[pb.JobEvent]:
        request = make_request(prompt, **options)
        call = self._submitter(request).Generate(request, timeout=timeout)
        try:
            async for response in call:
                yield response.event
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            call.cancel()

    async def submit(self, prompt: str | pb.GenerateRequest, **options: Unpack[RequestOptions]) -> pb.Job:
        request = gen.SubmitJobRequest(request=make_request(prompt, **options))
        try:
            return (await self._submitter(request.request).SubmitJob(request, timeout=self._timeout)).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def watch(
        self, job_id: str, after_sequence: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[pb.JobEvent]:
        call = self._stub.WatchJob(
            gen.WatchJobRequest(job_id=job_id, after_sequence=after_sequence), timeout=timeout
        )
        try:
            async for response in call:
                yield response.event
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            call.cancel()

    async def get(self, job_id: str) -> pb.Job:
        try:
            return (await self._stub.GetJob(gen.GetJobRequest(job_id=job_id), timeout=self._timeout)).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def cancel(self, job_id: str) -> pb.Job:
        try:
            return (
                await self._stub.CancelJob(gen.CancelJobRequest(job_id=job_id), timeout=self._timeout)
            ).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def list_models(self) -> list[gen.ModelInfo]:
        try:
            return list((await self._stub.ListModels(gen.ListModelsRequest(), timeout=self._timeout)).models)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def dead_letters(self) -> list[gen.DeadLetter]:
        try:
            reply = await self._stub.ListDeadLetters(gen.ListDeadLettersRequest(), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        return list(reply.dead_letters)

    async def requeue(self, job_id: str) -> pb.Job:
        try:
            return (
                await self._stub.RequeueJob(gen.RequeueJobRequest(job_id=job_id), timeout=self._timeout)
            ).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def embed(self, **options: Unpack[EmbedOptions]) -> emb.EmbedResponse:
        try:
            return await self._embedding.Embed(make_embed_request(**options), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def list_embedding_models(self) -> list[emb.EmbeddingModelInfo]:
        try:
            request = emb.ListEmbeddingModelsRequest()
            return list((await self._embedding.ListEmbeddingModels(request, timeout=self._timeout)).models)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        await self._channel.close(None)
        await self._keyed.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
