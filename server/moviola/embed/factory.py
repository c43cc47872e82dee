"""Builds the embedding backend and service a server process needs, from its settings."""

from __future__ import annotations

from moviola.embed.backend import EmbeddingBackend, NoBackend
from moviola.embed.service import EmbedConfig, Embedder, JobLookup
from moviola.metrics import Metrics
from moviola.settings import Settings


def backend(settings: Settings, *, in_process: bool) -> EmbeddingBackend:
    """Triton when ``triton_url`` is set; else in-process encoders (``in_process``) or none (a gateway)."""
    if settings.triton_url:
        from moviola.embed.triton import TritonBackend

        return TritonBackend(settings.triton_url, timeout=settings.embed_timeout)
    if not in_process:
        return NoBackend()
    from moviola.embed.local import LocalBackend  # torch and transformers: only where models run in-process

    if settings.embed_repository is not None:
        return LocalBackend.from_repository(settings.embed_repository, settings.device)
    return LocalBackend.tiny(settings.cache_dir / "embeddings", settings.device)


def embedder(
    settings: Settings, backend: EmbeddingBackend, jobs: JobLookup, metrics: Metrics | None = None
) -> Embedder:
    config = EmbedConfig(
        video_roots=(settings.data_dir, *settings.video_roots),
        concurrency=settings.embed_concurrency,
        default_frames=settings.embed_frames,
        max_frames=settings.embed_max_frames,
        default_model=settings.embed_model,
    )
    return Embedder(backend, jobs=jobs, config=config, metrics=metrics)
