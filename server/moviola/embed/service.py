"""The embedding service: what ``EmbeddingService.Embed`` calls.

    embedder = Embedder(backend, jobs=gateway.get, config=EmbedConfig(video_roots=(data_dir,)))
    result = await embedder.embed(EmbedQuery(VideoInput(data), frame_count=16))

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

from moviola.embed import media, pooling
from moviola.embed.backend import EmbeddingBackend, EmbeddingModel, Priority, Vectors
from moviola.errors import FailedPrecondition, InvalidRequest, MoviolaError, NotFound, PermissionDenied
from moviola.jobs import JobRecord, JobState
from moviola.metrics import Metrics
from moviola.storage.local import file_path


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


@dataclass(frozen=True)
class EmbedConfig:
    #: Folders whose files ``video_uri`` may name.
    video_roots: tuple[Path, ...] = ()
    #: Embed requests served at once; more wait for a slot.
    concurrency: int = 16
    #: Frames sampled from a video when the request does not say, and the most one may ask for.
    default_frames: int = 8
    max_frames: int = 256
    #: Default model where it takes the input; else the first cross-modal model (text and images), else
    #: the first that takes it.
    default_model: str | None = None


JobLookup = Callable[[str], Awaitable[JobRecord]]


class Embedder:
    def __init__(
        self,
        backend: EmbeddingBackend,
        *,
        jobs: JobLookup,
        config: EmbedConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.backend = backend
        self._metrics = metrics
        self._jobs = jobs
        self._config = config
        self._roots = tuple(root.resolve() for root in config.video_roots)
        self._slots = asyncio.Semaphore(config.concurrency)

    async def embed(self, query: EmbedQuery) -> Embedding:
        kind = _INPUT_NAMES[type(query.input)]
        started = time.perf_counter()
        try:
            async with self._slots:
                result = await self._embed(query)
        except MoviolaError as error:
            if self._metrics is not None:
                self._metrics.embedding_failures.labels(kind, type(error).__name__).inc()
            raise
        if self._metrics is not None:
            self._metrics.embedding_seconds.labels(result.model, kind).observe(time.perf_counter() - started)
        return result

    async def _embed(self, query: EmbedQuery) -> Embedding:
        config = self._config
        sampling = media.sampling(
            query.frame_count, query.frames_per_second, default=config.default_frames, limit=config.max_frames
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
                return await self._video(query, sampling, self._readable(uri), "video_uri")
            case JobInput(job_id=job_id):
                return await self._video(query, sampling, await self._job_video(job_id), "job_id")

    async def _text(self, query: EmbedQuery, text: str) -> Embedding:
        if not text.strip():
            raise InvalidRequest("text", "must not be empty")
        if "\0" in text:
            raise InvalidRequest("text", "must not contain NUL characters")
        model = await self._model(query.model, text=True)
        vectors = await self.backend.embed_texts(model.name, [text], priority=Priority.INTERACTIVE)
        return Embedding(pooling.normalize(vectors[0]), model.name)

    async def _image(self, query: EmbedQuery, data: bytes) -> Embedding:
        model = await self._model(query.model, text=False)
        assert model.image_size is not None
        if model.decodes_images:  # forward the file: smaller than its pixels, decoded next to the model
            media.check_image(data)
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
        configured = [m for m in fitting if m.name == self._config.default_model]
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
        return path

    async def _job_video(self, job_id: str) -> Path:
        record = await self._jobs(job_id)
        if record.state is not JobState.COMPLETED or record.result is None:
            raise FailedPrecondition(
                f"job_id: job {job_id} is {record.state.name}; only completed jobs have a video"
            )
        path = file_path(record.result.video_uri)
        if path is None or not await asyncio.to_thread(path.is_file):
            uri = record.result.video_uri
            raise NotFound(f"job_id: the video of job {job_id} ({uri}) is not on this server's disk")
        return path

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
