"""The asyncio client: the same methods as ``Client``, carrying out ``_core``'s calls with ``grpc.aio``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, TypeVar, Unpack

import grpc

from moviola.client import _core as core
from moviola.client._core import DEFAULT_SERVER, IDEMPOTENT_SERVICE_CONFIG, SERVICE_CONFIG, channel_options
from moviola.client._request import EmbedOptions, RequestOptions, SearchOptions
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb
from moviola.v1 import search_pb2 as search

Reply = TypeVar("Reply", bound=core._Parsable)
Out = TypeVar("Out")


class AsyncClient:
    def __init__(
        self,
        target: str = DEFAULT_SERVER,
        *,
        timeout: float | None = None,
        api_key: str | None = None,
        tls: core.Tls | None = None,
    ) -> None:
        self._target = target
        self._channel = self._open(target, SERVICE_CONFIG, tls)
        self._keyed = self._open(target, IDEMPOTENT_SERVICE_CONFIG, tls)
        self._timeout = timeout
        self._metadata = core.metadata(api_key)

    @staticmethod
    def _open(target: str, service_config: str, tls: core.Tls | None) -> grpc.aio.Channel:
        options = channel_options(service_config)
        if tls is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, tls.credentials(), options=options)

    async def _call(self, call: core.Unary[Any, Out]) -> Out:
        channel = self._keyed if call.keyed else self._channel
        method = channel.unary_unary(call.method, core.serialize, call.reply.FromString)
        with core.mapped_errors():
            return call.read(await method(call.request, timeout=self._timeout, metadata=self._metadata))

    async def _stream(
        self, call: core.Streamed[Reply], timeout: float | None, *, wait_for_ready: bool | None = None
    ) -> AsyncGenerator[Reply]:
        channel = self._keyed if call.keyed else self._channel
        stream = channel.unary_stream(call.method, core.serialize, call.reply.FromString)(
            call.request, timeout=timeout, wait_for_ready=wait_for_ready, metadata=self._metadata
        )
        try:
            async for reply in stream:
                yield reply
        finally:
            stream.cancel()

    async def _events(self, call: core.Streamed[Any], timeout: float | None) -> AsyncIterator[pb.JobEvent]:
        with core.mapped_errors():
            async with aclosing(self._stream(call, timeout)) as replies:
                async for reply in replies:
                    yield reply.event

    def generate(
        self,
        prompt: str | pb.GenerateRequest,
        *,
        timeout: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> AsyncIterator[pb.JobEvent]:
        return self._events(core.generate(prompt, dict(options)), timeout)

    async def submit(self, prompt: str | pb.GenerateRequest, **options: Unpack[RequestOptions]) -> pb.Job:
        return await self._call(core.submit(prompt, dict(options)))

    def watch(
        self, job_id: str, after_sequence: int = 0, *, timeout: float | None = None
    ) -> AsyncIterator[pb.JobEvent]:
        return self._events(core.watch(job_id, after_sequence), timeout)

    async def download(
        self,
        job_id: str,
        *,
        thumbnail: bool = False,
        spritesheet: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """A completed job's video (or its poster image, or its spritesheet) in chunks of at most 1 MiB."""
        streamed = core.download(job_id, thumbnail, spritesheet)
        with core.mapped_errors():
            async with aclosing(self._stream(streamed, timeout)) as replies:
                async for reply in replies:
                    yield reply.data

    async def list_jobs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        state: pb.JobState.ValueType = pb.JOB_STATE_UNSPECIFIED,
    ) -> tuple[list[pb.Job], str]:
        return await self._call(core.list_jobs(page_size, page_token, state))

    async def get(self, job_id: str) -> pb.Job:
        return await self._call(core.get_job(job_id))

    async def cancel(self, job_id: str) -> pb.Job:
        return await self._call(core.cancel_job(job_id))

    async def list_models(self) -> list[gen.ModelInfo]:
        return await self._call(core.list_models())

    async def dead_letters(self) -> list[gen.DeadLetter]:
        return await self._call(core.dead_letters())

    async def extend(self, job_id: str, prompt: str, seconds: float, *, idempotency_key: str = "") -> pb.Job:
        return await self._call(core.extend(job_id, prompt, seconds, idempotency_key))

    async def edit(
        self, job_id: str, prompt: str, *, strength: float | None = None, idempotency_key: str = ""
    ) -> pb.Job:
        return await self._call(core.edit(job_id, prompt, strength, idempotency_key))

    async def create_character(self, name: str, video: bytes) -> gen.Character:
        return await self._call(core.create_character(name, video))

    async def get_character(self, character_id: str) -> gen.Character:
        return await self._call(core.get_character(character_id))

    async def delete_character(self, character_id: str) -> gen.Character:
        return await self._call(core.delete_character(character_id))

    async def requeue(self, job_id: str) -> pb.Job:
        return await self._call(core.requeue(job_id))

    async def embed(self, **options: Unpack[EmbedOptions]) -> emb.EmbedResponse:
        return await self._call(core.embed(dict(options)))

    async def embed_batch(self, requests: Sequence[EmbedOptions]) -> list[emb.EmbedBatchResult]:
        return await self._call(core.embed_batch(requests))

    async def search_videos(self, **options: Unpack[SearchOptions]) -> search.SearchVideosResponse:
        return await self._call(core.search_videos(dict(options)))

    async def list_embedding_models(self) -> list[emb.EmbeddingModelInfo]:
        return await self._call(core.list_embedding_models())

    async def wait_ready(
        self, timeout: float = 60.0, *, waiting: Callable[[str], None] | None = None
    ) -> None:
        """Return once the server is listening and SERVING (see ``Client.wait_ready``)."""
        wait = core.ReadyWait(self._target, timeout, waiting)
        while (attempt := wait.attempt()) is not None:
            left, wait_for_ready = attempt
            try:
                async with aclosing(
                    self._stream(core.HEALTH_WATCH, left, wait_for_ready=wait_for_ready)
                ) as replies:
                    async for reply in replies:
                        if wait.seen(reply):
                            return
                wait.ended()
            except grpc.RpcError as exc:
                if wait.failed(exc):
                    return
            await asyncio.sleep(wait.pause())
        raise wait.gave_up()

    async def close(self) -> None:
        await self._channel.close(None)
        await self._keyed.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
