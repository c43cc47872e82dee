"""The blocking client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Unpack

import grpc

from moviola.client._request import EmbedOptions, RequestOptions, make_embed_request, make_request
from moviola.client.errors import translate
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import embedding_pb2_grpc, generation_pb2_grpc
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb

DEFAULT_SERVER = "127.0.0.1:50051"
_HERE = Path(__file__).resolve().parent
#: Calls that are safe to repeat: retried on UNAVAILABLE, 30 s default deadline for unary calls.
SERVICE_CONFIG = (_HERE / "service_config.json").read_text()
#: For requests with an idempotency key only: submits are retried on UNAVAILABLE and RESOURCE_EXHAUSTED
#: (honouring the server's grpc-retry-pushback-ms), since a repeat returns the same job.
IDEMPOTENT_SERVICE_CONFIG = (_HERE / "service_config_idempotent.json").read_text()
#: Large enough for an input image; the server refuses larger ones with a clear message.
CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


def channel_options(service_config: str) -> list[tuple[str, int | str]]:
    return [*CHANNEL_OPTIONS, ("grpc.service_config", service_config), ("grpc.enable_retries", 1)]


class Client:
    def __init__(self, target: str = DEFAULT_SERVER, *, timeout: float | None = None) -> None:
        """``timeout`` overrides the 30 s deadline of unary calls (streams run until their job ends).

        For several gateway replicas, use ``dns:///SERVICE:PORT`` with a headless Kubernetes Service:
        the channel balances round-robin over every address it resolves.
        """
        self._channel = grpc.insecure_channel(target, options=channel_options(SERVICE_CONFIG))
        self._keyed = grpc.insecure_channel(target, options=channel_options(IDEMPOTENT_SERVICE_CONFIG))
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._keyed_stub = generation_pb2_grpc.GenerationServiceStub(self._keyed)
        self._embedding = embedding_pb2_grpc.EmbeddingServiceStub(self._channel)
        self._timeout = timeout

    def _submitter(self, request: pb.GenerateRequest) -> generation_pb2_grpc.GenerationServiceStub:
        return self._keyed_stub if request.idempotency_key else self._stub

    def generate(
        self,
        prompt: str | pb.GenerateRequest,
        *,
        timeout: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> Iterator[pb.JobEvent]:
        """Submit a job and yield its events until the terminal one."""
        request = make_request(prompt, **options)
        stream = self._submitter(request).Generate(request, timeout=timeout)
        try:
            for response in stream:
                yield response.event
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            stream.cancel()

    def submit(self, prompt: str | pb.GenerateRequest, **options: Unpack[RequestOptions]) -> pb.Job:
        """Queue a job and return it at once."""
        request = gen.SubmitJobRequest(request=make_request(prompt, **options))
        try:
            return self._submitter(request.request).SubmitJob(request, timeout=self._timeout).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def watch(
        self, job_id: str, after_sequence: int = 0, *, timeout: float | None = None
    ) -> Iterator[pb.JobEvent]:
        """Yield the job's events after ``after_sequence``, then live ones, until the terminal one."""
        stream = self._stub.WatchJob(
            gen.WatchJobRequest(job_id=job_id, after_sequence=after_sequence), timeout=timeout
        )
        try:
            for response in stream:
                yield response.event
        except grpc.RpcError as exc:
            raise translate(exc) from exc
        finally:
            stream.cancel()

    def get(self, job_id: str) -> pb.Job:
        try:
            return self._stub.GetJob(gen.GetJobRequest(job_id=job_id), timeout=self._timeout).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def cancel(self, job_id: str) -> pb.Job:
        try:
            return self._stub.CancelJob(gen.CancelJobRequest(job_id=job_id), timeout=self._timeout).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def list_models(self) -> list[gen.ModelInfo]:
        try:
            return list(self._stub.ListModels(gen.ListModelsRequest(), timeout=self._timeout).models)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def dead_letters(self) -> list[gen.DeadLetter]:
        """Jobs given up on after too many attempts (operators)."""
        try:
            return list(
                self._stub.ListDeadLetters(gen.ListDeadLettersRequest(), timeout=self._timeout).dead_letters
            )
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def requeue(self, job_id: str) -> pb.Job:
        """Run a dead-lettered job's request again; returns the new job."""
        try:
            return self._stub.RequeueJob(gen.RequeueJobRequest(job_id=job_id), timeout=self._timeout).job
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def embed(self, **options: Unpack[EmbedOptions]) -> emb.EmbedResponse:
        """``embed(text="a red fox")``, ``embed(video=data, frame_count=16, return_frame_embeddings=True)``."""
        try:
            return self._embedding.Embed(make_embed_request(**options), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def list_embedding_models(self) -> list[emb.EmbeddingModelInfo]:
        try:
            request = emb.ListEmbeddingModelsRequest()
            return list((self._embedding.ListEmbeddingModels(request, timeout=self._timeout)).models)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def close(self) -> None:
        self._channel.close()
        self._keyed.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
