"""The embedding service: what ``EmbeddingService.Embed`` calls.

    embedder = Embedder(backend, jobs=gateway.get, storage=storage, settings=settings.embed)
    result = await embedder.embed(EmbedQuery(VideoInput(data), frame_count=16))

Every field is held to the limits of ``moviola.validation`` before any work; a job's
video is read only through the ``Storage`` that wrote it, whatever its record says.

Texts and images go to the backend as one interactive request (an image as the
file sent, where the backend decodes images itself, else as pixels); videos are
decoded off the event loop, sampled, sent in batches at bulk priority, and
their frame vectors pooled. Every vector returned is L2-normalised. Requests
take a concurrency slot of their own: embeddings never queue behind generations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from moviola.auth.caller import ANONYMOUS, Caller
from moviola.embed import media, pooling
from moviola.embed.backend import EmbeddingBackend, EmbeddingModel, Priority, Vectors
from moviola.errors import (
    FailedPrecondition,
    InvalidRequest,
    MoviolaError,
    NotFound,
    NotInStorage,
    PermissionDenied,
)
from moviola.jobs import JobRecord, JobState
from moviola.metrics import Metrics
from moviola.settings import EmbedSettings
from moviola.storage.base import Storage
from moviola.storage.local import file_path
from moviola.validation import (
    MAX_EMBED_TEXT_CHARS,
    MAX_IMAGE_BYTES,
    MAX_JOB_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_URI_CHARS,
    MAX_VIDEO_BYTES,
    check_image,
    check_length,
)


class Pooling(Enum):
    MEAN = "mean"
    TEMPORAL = "temporal"


@dataclass(frozen=True)
class TextInput:
    text: str


@dataclass(frozen=True)
class ImageInput:
    data: bytes


@dataclass(frozen=True)
class VideoInput:
    data: bytes


@dataclass(frozen=True)
class VideoUriInput:
    uri: str


@dataclass(frozen=True)
class JobInput:
    job_id: str


Input = TextInput | ImageInput | VideoInput | VideoUriInput | JobInput
_INPUT_NAMES: dict[type, str] = {
    TextInput: "text",
    ImageInput: "image",
    VideoInput: "video",
    VideoUriInput: "video_uri",
    JobInput: "job_id",
}


@dataclass(frozen=True)
class EmbedQuery:
    input: Input
    #: Empty: the default model.
    model: str = ""
    #: Video inputs: frames to sample evenly (0: the configured default) or, instead, frames per second.
    frame_count: int = 0
    frames_per_second: float = 0.0
    pooling: Pooling = Pooling.MEAN
    return_frames: bool = False
    #: Who asks: ``job_id`` names only the caller's tenant's jobs.
    caller: Caller = ANONYMOUS


@dataclass(frozen=True)
class FrameVector:
    index: int
    time: float
    vector: Vectors


@dataclass(frozen=True)
class Embedding:
    vector: Vectors
    model: str
    #: Video inputs only.
    pooling: Pooling | None = None
    sampled_frames: int = 0
    frames: list[FrameVector] = field(default_factory=list)


@dataclass(frozen=True)
class ModelListing:
    model: EmbeddingModel
    default_for_text: bool
    default_for_images: bool


#: The job service's ``get``: a job of the caller's tenant, else ``JobNotFound``.
JobLookup = Callable[[str, Caller], Awaitable[JobRecord]]


class Embedder:
    def __init__(
        self,
        backend: EmbeddingBackend,
        *,
        jobs: JobLookup,
        storage: Storage,
        settings: EmbedSettings,
        data_dir: Path | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """``data_dir``: a folder whose files ``video_uri`` may name, besides ``settings.video_roots``."""
        self.backend = backend
        self._metrics = metrics
        self._jobs = jobs
        self._storage = storage
        self._settings = settings
        roots = (*((data_dir,) if data_dir is not None else ()), *settings.video_roots)
        self._roots = tuple(root.resolve() for root in roots)
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def embed(self, query: EmbedQuery) -> Embedding:
        kind = _INPUT_NAMES[type(query.input)]
        started = time.perf_counter()
        try:
            _check_lengths(query)
            async with self._slots:
                result = await self._embed(query)
        except MoviolaError as error:
            self.failed(kind, error)
            raise
        self.observe(result.model, kind, time.perf_counter() - started)
        return result

    async def _embed(self, query: EmbedQuery) -> Embedding:
        settings = self._settings
        sampling = media.sampling(
            query.frame_count, query.frames_per_second, default=settings.frames, limit=settings.max_frames
        )
        match query.input:
            case TextInput(text=text):
                return await self._text(query, text)
            case ImageInput(data=data):
                return await self._image(query, data)
            case VideoInput(data=data):
                if not data:
                    raise InvalidRequest("video", "is empty")
                return await self._video(query, sampling, data, "video")
            case VideoUriInput(uri=uri):
                if (
                    not query.caller.admin
                ):  # a tenant could read files of the server's, other tenants' videos too
                    raise PermissionDenied(
                        "video_uri names a file on the server: with an auth file only admin keys may use it; "
                        "send job_id for a video of your own job, or the video's bytes"
                    )
                return await self._video(query, sampling, self._readable(uri), "video_uri")
            case JobInput(job_id=job_id):
                return await self._video(
                    query, sampling, await self._job_video(job_id, query.caller), "job_id"
                )

    async def _text(self, query: EmbedQuery, text: str) -> Embedding:
        model = await self.text_model(query)
        vectors = await self.backend.embed_texts(model.name, [text], priority=Priority.INTERACTIVE)
        return Embedding(pooling.normalize(vectors[0]), model.name)

    async def text_model(self, query: EmbedQuery) -> EmbeddingModel:
        """The model that embeds ``query``'s text, once the text and the model name are valid."""
        assert isinstance(query.input, TextInput)
        _check_lengths(query)
        text = query.input.text
        if not text.strip():
            raise InvalidRequest("text", "must not be empty")
        if "\0" in text:
            raise InvalidRequest("text", "must not contain NUL characters")
        return await self._model(query.model, text=True)

    def slot(self) -> asyncio.Semaphore:
        """The concurrency slots every embedding takes one of while it runs."""
        return self._slots

    def observe(self, model: str, kind: str, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.embedding_seconds.labels(model, kind).observe(seconds)

    def failed(self, kind: str, error: MoviolaError) -> None:
        if self._metrics is not None:
            self._metrics.embedding_failures.labels(kind, type(error).__name__).inc()

    async def _image(self, query: EmbedQuery, data: bytes) -> Embedding:
        check_image(data, "image")  # as for generation: limits and a full decode, before any other work
        model = await self._model(query.model, text=False)
        assert model.image_size is not None
        if model.decodes_images:  # forward the file: smaller than its pixels, decoded next to the model
            vectors = await self.backend.embed_image_file(model.name, data, priority=Priority.INTERACTIVE)
        else:
            pixels = await asyncio.to_thread(media.load_image, data, model.image_size)
            vectors = await self.backend.embed_images(
                model.name, pixels[np.newaxis], priority=Priority.INTERACTIVE
            )
        return Embedding(pooling.normalize(vectors[0]), model.name)

    async def models(self) -> list[ModelListing]:
        """The models served, each with whether it is the default for text and for images."""
        models = await self.backend.models()
        text, images = self._default(models, text=True), self._default(models, text=False)
        return [
            ModelListing(
                m, text is not None and m.name == text.name, images is not None and m.name == images.name
            )
            for m in sorted(models.values(), key=lambda m: m.name)
        ]

    def _default(self, models: dict[str, EmbeddingModel], *, text: bool) -> EmbeddingModel | None:
        """``default_model`` when it fits, else the first cross-modal model that does, else the first that does."""
        fitting = [m for m in models.values() if (m.accepts_text if text else m.accepts_images)]
        configured = [m for m in fitting if m.name == self._settings.model]
        ranked = sorted(fitting, key=lambda m: (not (m.accepts_text and m.accepts_images), m.name))
        return next(iter(configured + ranked), None)

    async def _model(self, name: str, *, text: bool) -> EmbeddingModel:
        models = await self.backend.models()
        kind = "text" if text else "images"
        if not name:
            found = self._default(models, text=text)
            if found is None:
                raise FailedPrecondition(f"no embedding model served here embeds {kind}")
            return found
        if name not in models:
            known = ", ".join(sorted(models)) or "none"
            raise InvalidRequest("model", f"unknown embedding model {name!r}; served: {known}")
        if not (models[name].accepts_text if text else models[name].accepts_images):
            raise InvalidRequest("model", f"{name} does not embed {kind}")
        return models[name]

    def _readable(self, uri: str) -> Path:
        path = file_path(uri)
        if path is None:
            raise InvalidRequest("video_uri", "only file:// URIs are supported")
        if not any(path.is_relative_to(root) for root in self._roots):
            raise PermissionDenied(
                f"video_uri: {path} is outside the folders this server may read (--video-root)"
            )
        if not path.is_file():
            raise NotFound(f"video_uri: no file at {path}")
        size = path.stat().st_size
        if size > MAX_VIDEO_BYTES:
            raise InvalidRequest("video_uri", f"the file is {size} bytes; the limit is {MAX_VIDEO_BYTES}")
        return path

    async def _job_video(self, job_id: str, caller: Caller) -> bytes:
        """The job's video, read through the storage: a record pointing elsewhere reads nothing."""
        record = await self._jobs(job_id, caller)
        if record.state is not JobState.COMPLETED or record.result is None:
            raise FailedPrecondition(
                f"job_id: job {job_id} is {record.state.name}; only completed jobs have a video"
            )
        uri = record.result.video_uri
        try:
            return await asyncio.to_thread(self._storage.read, uri)
        except NotInStorage as exc:
            raise NotInStorage(
                f"job_id: the video of job {job_id} ({uri}) is not in this server's storage; it is not read"
            ) from exc
        except NotFound as exc:
            raise NotFound(f"job_id: the video of job {job_id} ({uri}) is no longer stored") from exc

    async def _video(
        self, query: EmbedQuery, sampling: media.Sampling, source: bytes | Path, field: str
    ) -> Embedding:
        model = await self._model(query.model, text=False)
        assert model.image_size is not None
        frames = await asyncio.to_thread(media.sample_video, source, sampling, model.image_size, field)
        chunks = [
            frames.pixels[i : i + model.max_batch] for i in range(0, len(frames.pixels), model.max_batch)
        ]
        parts = await asyncio.gather(
            *(self.backend.embed_images(model.name, chunk, priority=Priority.BULK) for chunk in chunks)
        )
        vectors = pooling.normalize(np.concatenate(parts))
        pooled = pooling.temporal(vectors) if query.pooling is Pooling.TEMPORAL else pooling.mean(vectors)
        per_frame = (
            [FrameVector(i, t, v) for i, t, v in zip(frames.indices, frames.times, vectors, strict=True)]
            if query.return_frames
            else []
        )
        return Embedding(pooled, model.name, query.pooling, len(frames.indices), per_frame)


def _check_lengths(query: EmbedQuery) -> None:
    """Every string and bytes field within its limit: the first thing an embedding does."""
    check_length("model", query.model, MAX_NAME_CHARS)
    match query.input:
        case TextInput(text=text):
            check_length("text", text, MAX_EMBED_TEXT_CHARS)
        case ImageInput(data=data):
            check_length("image", data, MAX_IMAGE_BYTES)
        case VideoInput(data=data):
            check_length("video", data, MAX_VIDEO_BYTES)
        case VideoUriInput(uri=uri):
            check_length("video_uri", uri, MAX_URI_CHARS)
        case JobInput(job_id=job_id):
            check_length("job_id", job_id, MAX_JOB_ID_CHARS)
