"""The blocking client."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Unpack

import grpc

from moviola.client._request import RequestOptions, make_request
from moviola.client.errors import translate
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb

DEFAULT_SERVER = "127.0.0.1:50051"
#: Large enough for an input image; the server refuses larger ones with a clear message.
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


class Client:
    def __init__(self, target: str = DEFAULT_SERVER, *, timeout: float | None = None) -> None:
        """``timeout`` is the deadline in seconds of each unary call (streams run until their job ends)."""
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self._timeout = timeout

    def generate(
        self,
        prompt: str | pb.GenerateRequest,
        *,
        timeout: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> Iterator[pb.JobEvent]:
        """Submit a job and yield its events until the terminal one."""
        stream = self._stub.Generate(make_request(prompt, **options), timeout=timeout)
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
            return self._stub.SubmitJob(request, timeout=self._timeout).job
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

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
