"""The blocking client: carries out the calls ``_core`` describes with grpc's blocking API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from pathlib import Path
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


class Client:
    def __init__(
        self,
        target: str = DEFAULT_SERVER,
        *,
        timeout: float | None = None,
        api_key: str | None = None,
        tls: core.Tls | None = None,
    ) -> None:
        """``timeout`` overrides the 30 s deadline of unary calls (streams run until their job ends).

        ``api_key``: sent as ``authorization: Bearer KEY`` on every call (servers with ``--auth-file``).
        ``tls``: connect with TLS (``Tls(ca="ca.pem")``; add ``cert``/``key`` for mTLS).
        For several gateway replicas, use ``dns:///SERVICE:PORT`` with a headless Kubernetes Service:
        the channel balances round-robin over every address it resolves.
        """
        self._target = target
        self._channel = self._open(target, SERVICE_CONFIG, tls)
        self._keyed = self._open(target, IDEMPOTENT_SERVICE_CONFIG, tls)
        self._timeout = timeout
        self._metadata = core.metadata(api_key)

    @staticmethod
    def _open(target: str, service_config: str, tls: core.Tls | None) -> grpc.Channel:
        options = channel_options(service_config)
        if tls is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, tls.credentials(), options=options)

    def _call(self, call: core.Unary[Any, Out]) -> Out:
        channel = self._keyed if call.keyed else self._channel
        method = channel.unary_unary(call.method, core.serialize, call.reply.FromString)
        with core.mapped_errors():
            return call.read(method(call.request, timeout=self._timeout, metadata=self._metadata))

    def _stream(
        self, call: core.Streamed[Reply], timeout: float | None, *, wait_for_ready: bool | None = None
    ) -> Generator[Reply]:
        channel = self._keyed if call.keyed else self._channel
        stream = channel.unary_stream(call.method, core.serialize, call.reply.FromString)(
            call.request, timeout=timeout, wait_for_ready=wait_for_ready, metadata=self._metadata
        )
        try:
            yield from stream
        finally:
            stream.cancel()

    def _events(self, call: core.Streamed[Any], timeout: float | None) -> Iterator[pb.JobEvent]:
        with core.mapped_errors(), closing(self._stream(call, timeout)) as replies:
            for reply in replies:
                yield reply.event

    def generate(
        self,
        prompt: str | pb.GenerateRequest,
        *,
        timeout: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> Iterator[pb.JobEvent]:
        """Submit a job and yield its events until the terminal one."""
        return self._events(core.generate(prompt, dict(options)), timeout)

    def submit(self, prompt: str | pb.GenerateRequest, **options: Unpack[RequestOptions]) -> pb.Job:
        """Queue a job and return it at once."""
        return self._call(core.submit(prompt, dict(options)))

    def watch(
        self, job_id: str, after_sequence: int = 0, *, timeout: float | None = None
    ) -> Iterator[pb.JobEvent]:
        """Yield the job's events after ``after_sequence``, then live ones, until the terminal one."""
        return self._events(core.watch(job_id, after_sequence), timeout)

    def download(
        self,
        job_id: str,
        *,
        thumbnail: bool = False,
        spritesheet: bool = False,
        timeout: float | None = None,
    ) -> Iterator[bytes]:
        """A completed job's video (or its poster image, or its spritesheet) in chunks of at most 1 MiB,
        from any storage."""
        streamed = core.download(job_id, thumbnail, spritesheet)
        with (
            core.mapped_errors(),
            closing(self._stream(streamed, timeout)) as replies,
        ):
            for reply in replies:
                yield reply.data

    def download_to(
        self,
        job_id: str,
        path: str | os.PathLike[str],
        *,
        thumbnail: bool = False,
        spritesheet: bool = False,
    ) -> int:
        """Write the video (or poster, or spritesheet) to ``path``, whole or not at all (a temporary file
        renamed into place).

        Returns the bytes written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.part")
        try:
            with staging.open("wb") as out:
                chunks = self.download(job_id, thumbnail=thumbnail, spritesheet=spritesheet)
                size = sum(out.write(chunk) for chunk in chunks)
            staging.replace(target)
        finally:
            staging.unlink(missing_ok=True)
        return size

    def list_jobs(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        state: pb.JobState.ValueType = pb.JOB_STATE_UNSPECIFIED,
    ) -> tuple[list[pb.Job], str]:
        """One page of your jobs, newest first, and the token of the next page ("" after the last)."""
        return self._call(core.list_jobs(page_size, page_token, state))

    def get(self, job_id: str) -> pb.Job:
        return self._call(core.get_job(job_id))

    def cancel(self, job_id: str) -> pb.Job:
        return self._call(core.cancel_job(job_id))

    def list_models(self) -> list[gen.ModelInfo]:
        return self._call(core.list_models())

    def dead_letters(self) -> list[gen.DeadLetter]:
        """Jobs given up on after too many attempts (operators)."""
        return self._call(core.dead_letters())

    def extend(self, job_id: str, prompt: str, seconds: float, *, idempotency_key: str = "") -> pb.Job:
        """A new job: the completed job's video, then ``seconds`` more made from ``prompt``; returns it queued."""
        return self._call(core.extend(job_id, prompt, seconds, idempotency_key))

    def edit(
        self, job_id: str, prompt: str, *, strength: float | None = None, idempotency_key: str = ""
    ) -> pb.Job:
        """A new job: the completed job's video made again from ``prompt`` (video-to-video, ``strength`` of
        the way from it; None: the server's default); returns it queued."""
        return self._call(core.edit(job_id, prompt, strength, idempotency_key))

    def create_character(self, name: str, video: bytes) -> gen.Character:
        """Store a character (a reference image taken from ``video``); ``character_id`` in a request uses it."""
        return self._call(core.create_character(name, video))

    def get_character(self, character_id: str) -> gen.Character:
        return self._call(core.get_character(character_id))

    def delete_character(self, character_id: str) -> gen.Character:
        return self._call(core.delete_character(character_id))

    def requeue(self, job_id: str) -> pb.Job:
        """Run a dead-lettered job's request again; returns the new job."""
        return self._call(core.requeue(job_id))

    def embed(self, **options: Unpack[EmbedOptions]) -> emb.EmbedResponse:
        """``embed(text="a red fox")``, ``embed(video=data, frame_count=16, return_frame_embeddings=True)``."""
        return self._call(core.embed(dict(options)))

    def embed_batch(self, requests: Sequence[EmbedOptions]) -> list[emb.EmbedBatchResult]:
        """Many inputs in one call, each as ``embed`` takes it: ``embed_batch([{"text": "a fox"}, {"job_id": j}])``.

        One result per request, in order: ``result.embedding``, or ``result.error`` (the status that request
        alone would have got: ``code``, ``message``, ``field``). Texts for one model are embedded together.
        """
        return self._call(core.embed_batch(requests))

    def search_videos(self, **options: Unpack[SearchOptions]) -> search.SearchVideosResponse:
        """The caller's videos closest to a query, best first: ``search_videos(text="a red fox", top_k=5)``.

        One of ``text``, ``image``, ``video`` (bytes) or ``job_id``; filters ``models``, ``created_after`` and
        ``created_before`` (Unix seconds). ``FailedPrecondition`` when the server keeps no index.
        """
        return self._call(core.search_videos(dict(options)))

    def list_embedding_models(self) -> list[emb.EmbeddingModelInfo]:
        return self._call(core.list_embedding_models())

    def wait_ready(self, timeout: float = 60.0, *, waiting: Callable[[str], None] | None = None) -> None:
        """Block until the server is listening and its health service says SERVING (its models are loaded).

        ``waiting(reason)`` is called whenever it is not ready yet; raises ``Unavailable`` after ``timeout``
        seconds. ``client.wait_ready(120)`` before the first ``generate`` of a server that is starting.
        """
        wait = core.ReadyWait(self._target, timeout, waiting)
        while (attempt := wait.attempt()) is not None:
            left, wait_for_ready = attempt
            try:
                with closing(self._stream(core.HEALTH_WATCH, left, wait_for_ready=wait_for_ready)) as replies:
                    if any(wait.seen(reply) for reply in replies):
                        return
                wait.ended()
            except grpc.RpcError as exc:
                if wait.failed(exc):
                    return
            time.sleep(wait.pause())
        raise wait.gave_up()

    def close(self) -> None:
        self._channel.close()
        self._keyed.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
