"""Builds the embedding backend and service a server process needs, from its settings."""

from __future__ import annotations

from moviola.embed.backend import EmbeddingBackend, NoBackend
from moviola.embed.service import Embedder, JobLookup
from moviola.metrics import Metrics
from moviola.settings import Settings
from moviola.storage.base import Storage


def backend(settings: Settings, *, in_process: bool) -> EmbeddingBackend:
    """Triton when ``triton_url`` is set; else in-process encoders (``in_process``) or none (a gateway)."""
    if settings.embed.triton_url:
        from moviola.embed.triton import TritonBackend

        return TritonBackend(settings.embed.triton_url, timeout=settings.embed.timeout)
    if not in_process:
        return NoBackend()
    from moviola.embed.local import LocalBackend  # torch and transformers: only where models run in-process

    if settings.embed.repository is not None:
        return LocalBackend.from_repository(settings.embed.repository, settings.models.device)
    return LocalBackend.tiny(settings.models.cache_dir / "embeddings", settings.models.device)


def embedder(
    settings: Settings,
    backend: EmbeddingBackend,
    jobs: JobLookup,
    storage: Storage,
    metrics: Metrics | None = None,
) -> Embedder:
    """The embedder over ``backend``; job videos are read through ``storage`` (the one the workers write)."""
    return Embedder(
        backend,
        jobs=jobs,
        storage=storage,
        settings=settings.embed,
        data_dir=settings.storage.data_dir,
        metrics=metrics,
    )
