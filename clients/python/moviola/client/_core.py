"""What ``Client`` and ``AsyncClient`` share: channel settings, every call's request, and error mapping.

Each call is described once here, as data: ``Unary`` (method, request, reply type, how to read the
reply) or ``Streamed`` (method, request, reply type). The two clients only carry the descriptions
out, one with grpc's blocking API and one with ``grpc.aio``, inside ``mapped_errors()``, which
turns a failed call into a ``moviola.client.errors`` exception (``raise ... from exc``).

    call = get_job("abc")          # Unary[GetJobResponse, Job]
    with mapped_errors():
        job = call.read(channel.unary_unary(call.method, ...)(call.request))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from moviola.client._request import make_embed_request, make_request, make_search_request
from moviola.client.errors import Unavailable, translate
from moviola.v1 import embedding_pb2 as emb
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import job_pb2 as pb
from moviola.v1 import search_pb2 as search

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


@dataclass(frozen=True)
class Tls:
    """Connect with TLS: ``ca`` (PEM file) to trust, else the system's roots; a client certificate for mTLS."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs its key (and the key its certificate)")
        return grpc.ssl_channel_credentials(read(self.ca), read(self.key), read(self.cert))


def metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """What every call sends: the API key as ``authorization: Bearer KEY`` when there is one."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


class _Parsable(Protocol):
    @classmethod
    def FromString(cls, data: bytes) -> Self: ...


Reply = TypeVar("Reply", bound=_Parsable)
Out = TypeVar("Out")


def _method(file: Any, service: str, name: str) -> str:  # a generated module's DESCRIPTOR (pure or upb)
    """``/moviola.v1.GenerationService/GetJob``; a name the proto lacks fails at import, not at call time."""
    described = file.services_by_name[service]
    return f"/{described.full_name}/{described.methods_by_name[name].name}"


def serialize(message: Message) -> bytes:
    return message.SerializeToString()


@dataclass(frozen=True)
class Unary(Generic[Reply, Out]):
    """One request, one reply, and what the caller gets out of it."""

    method: str
    request: Message
    reply: type[Reply]
    read: Callable[[Reply], Out]
    #: Sent on the channel whose service config retries submits (the request has an idempotency key).
    keyed: bool = False


@dataclass(frozen=True)
class Streamed(Generic[Reply]):
    """One request, a stream of replies."""

    method: str
    request: Message
    reply: type[Reply]
    keyed: bool = False


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn a failed gRPC call inside the block into a ``MoviolaError`` (both APIs raise ``grpc.RpcError``)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise translate(exc) from exc


def _generation(name: str) -> str:
    return _method(gen.DESCRIPTOR, "GenerationService", name)


def _embedding(name: str) -> str:
    return _method(emb.DESCRIPTOR, "EmbeddingService", name)


def generate(prompt: str | pb.GenerateRequest, options: dict[str, Any]) -> Streamed[gen.GenerateResponse]:
    request = make_request(prompt, **options)
    return Streamed(_generation("Generate"), request, gen.GenerateResponse, bool(request.idempotency_key))


def watch(job_id: str, after_sequence: int) -> Streamed[gen.WatchJobResponse]:
    request = gen.WatchJobRequest(job_id=job_id, after_sequence=after_sequence)
    return Streamed(_generation("WatchJob"), request, gen.WatchJobResponse)


def submit(prompt: str | pb.GenerateRequest, options: dict[str, Any]) -> Unary[gen.SubmitJobResponse, pb.Job]:
    request = gen.SubmitJobRequest(request=make_request(prompt, **options))
    keyed = bool(request.request.idempotency_key)
    return Unary(_generation("SubmitJob"), request, gen.SubmitJobResponse, lambda r: r.job, keyed)


def download(job_id: str, thumbnail: bool, spritesheet: bool = False) -> Streamed[gen.DownloadVideoResponse]:
    if thumbnail and spritesheet:
        raise ValueError("download the thumbnail or the spritesheet, not both")
    variant = gen.VIDEO_VARIANT_VIDEO
    if thumbnail:
        variant = gen.VIDEO_VARIANT_THUMBNAIL
    elif spritesheet:
        variant = gen.VIDEO_VARIANT_SPRITESHEET
    request = gen.DownloadVideoRequest(job_id=job_id, variant=variant)
    return Streamed(_generation("DownloadVideo"), request, gen.DownloadVideoResponse)


def list_jobs(
    page_size: int, page_token: str, state: pb.JobState.ValueType
) -> Unary[gen.ListJobsResponse, tuple[list[pb.Job], str]]:
    request = gen.ListJobsRequest(page_size=page_size, page_token=page_token, state=state)
    return Unary(
        _generation("ListJobs"), request, gen.ListJobsResponse, lambda r: (list(r.jobs), r.next_page_token)
    )


def get_job(job_id: str) -> Unary[gen.GetJobResponse, pb.Job]:
    return Unary(_generation("GetJob"), gen.GetJobRequest(job_id=job_id), gen.GetJobResponse, lambda r: r.job)


def cancel_job(job_id: str) -> Unary[gen.CancelJobResponse, pb.Job]:
    request = gen.CancelJobRequest(job_id=job_id)
    return Unary(_generation("CancelJob"), request, gen.CancelJobResponse, lambda r: r.job)


def list_models() -> Unary[gen.ListModelsResponse, list[gen.ModelInfo]]:
    request = gen.ListModelsRequest()
    return Unary(_generation("ListModels"), request, gen.ListModelsResponse, lambda r: list(r.models))


def dead_letters() -> Unary[gen.ListDeadLettersResponse, list[gen.DeadLetter]]:
    request = gen.ListDeadLettersRequest()
    return Unary(
        _generation("ListDeadLetters"), request, gen.ListDeadLettersResponse, lambda r: list(r.dead_letters)
    )


def extend(
    job_id: str, prompt: str, seconds: float, idempotency_key: str = ""
) -> Unary[gen.ExtendJobResponse, pb.Job]:
    request = gen.ExtendJobRequest(
        job_id=job_id, prompt=prompt, seconds=seconds, idempotency_key=idempotency_key
    )
    return Unary(_generation("ExtendJob"), request, gen.ExtendJobResponse, lambda r: r.job)


def edit(
    job_id: str, prompt: str, strength: float | None = None, idempotency_key: str = ""
) -> Unary[gen.EditJobResponse, pb.Job]:
    request = gen.EditJobRequest(
        job_id=job_id, prompt=prompt, strength=strength, idempotency_key=idempotency_key
    )
    return Unary(_generation("EditJob"), request, gen.EditJobResponse, lambda r: r.job)


def create_character(name: str, video: bytes) -> Unary[gen.CreateCharacterResponse, gen.Character]:
    request = gen.CreateCharacterRequest(name=name, video=video)
    return Unary(_generation("CreateCharacter"), request, gen.CreateCharacterResponse, lambda r: r.character)


def get_character(character_id: str) -> Unary[gen.GetCharacterResponse, gen.Character]:
    request = gen.GetCharacterRequest(character_id=character_id)
    return Unary(_generation("GetCharacter"), request, gen.GetCharacterResponse, lambda r: r.character)


def delete_character(character_id: str) -> Unary[gen.DeleteCharacterResponse, gen.Character]:
    request = gen.DeleteCharacterRequest(character_id=character_id)
    return Unary(_generation("DeleteCharacter"), request, gen.DeleteCharacterResponse, lambda r: r.character)


def requeue(job_id: str) -> Unary[gen.RequeueJobResponse, pb.Job]:
    request = gen.RequeueJobRequest(job_id=job_id)
    return Unary(_generation("RequeueJob"), request, gen.RequeueJobResponse, lambda r: r.job)


def embed(options: dict[str, Any]) -> Unary[emb.EmbedResponse, emb.EmbedResponse]:
    return Unary(_embedding("Embed"), make_embed_request(**options), emb.EmbedResponse, lambda r: r)


def embed_batch(
    requests: Sequence[Mapping[str, Any]],
) -> Unary[emb.EmbedBatchResponse, list[emb.EmbedBatchResult]]:
    request = emb.EmbedBatchRequest(requests=[make_embed_request(**options) for options in requests])
    return Unary(_embedding("EmbedBatch"), request, emb.EmbedBatchResponse, lambda r: list(r.results))


def list_embedding_models() -> Unary[emb.ListEmbeddingModelsResponse, list[emb.EmbeddingModelInfo]]:
    request = emb.ListEmbeddingModelsRequest()
    return Unary(
        _embedding("ListEmbeddingModels"), request, emb.ListEmbeddingModelsResponse, lambda r: list(r.models)
    )


def search_videos(
    options: Mapping[str, Any],
) -> Unary[search.SearchVideosResponse, search.SearchVideosResponse]:
    request = make_search_request(**options)
    method = _method(search.DESCRIPTOR, "SearchService", "SearchVideos")
    return Unary(method, request, search.SearchVideosResponse, lambda r: r)


#: grpc.health.v1 Watch on the whole server: SERVING once it is READY (listening, models loaded).
HEALTH_WATCH = Streamed(
    _method(health_pb2.DESCRIPTOR, "Health", "Watch"),
    health_pb2.HealthCheckRequest(service=""),
    health_pb2.HealthCheckResponse,
)
#: Pause between attempts to reach a server that refuses connections outright (wait_for_ready covers the rest).
_RECONNECT_PAUSE = 0.5


@dataclass
class ReadyWait:
    """The rules of ``wait_ready``, shared by both clients; they only open the health streams it asks for.

    Ready means the health service says SERVING; a server without a health service counts as ready
    (the call itself will say if it is not).
    """

    target: str
    timeout: float
    waiting: Callable[[str], None] | None = None
    deadline: float = field(init=False)
    #: Why the server is not ready yet, for the caller and the final error.
    reason: str = "no answer yet"
    _pause: float = 0.0
    _wait_for_ready: bool = False

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def attempt(self) -> tuple[float, bool] | None:
        """(seconds left, wait_for_ready) for the next health stream, or None once the time is up."""
        left = self.deadline - time.monotonic()
        return None if left <= 0 else (left, self._wait_for_ready)

    def pause(self) -> float:
        """Seconds to pause before the next attempt (never past the deadline)."""
        return max(0.0, min(self._pause, self.deadline - time.monotonic()))

    def _wait(self, reason: str) -> None:
        self.reason = reason
        if self.waiting is not None:
            self.waiting(reason)

    def seen(self, reply: health_pb2.HealthCheckResponse) -> bool:
        """True once serving."""
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower().replace("_", " ")
        self._wait(f"the server at {self.target} is {status} (loading its model, or shutting down)")
        self._pause = 0.0
        return False

    def ended(self) -> None:
        """The stream ended without an error: the server went away; wait for one to come back."""
        self._wait_for_ready, self._pause = True, 0.0

    def failed(self, error: grpc.RpcError) -> bool:
        """True when the server has no health service (nothing to wait for); raises what cannot be waited out."""
        code_of = getattr(error, "code", None)
        code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return True
        if code == grpc.StatusCode.UNAVAILABLE:
            self._wait(f"no server answers at {self.target} yet")
            self._pause = _RECONNECT_PAUSE if self._wait_for_ready else 0.0
            self._wait_for_ready = True
            return False
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            self.deadline = time.monotonic()
            return False
        raise translate(error) from error

    def gave_up(self) -> Unavailable:
        return Unavailable(grpc.StatusCode.UNAVAILABLE, f"not ready after {self.timeout:g}s: {self.reason}")
