"""The one settings object of a Moviola process, built once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from moviola.catalog import DEFAULT_MODEL


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback) / "moviola"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    model: str = DEFAULT_MODEL
    #: More models the embedded server serves beside ``model`` (one worker each).
    extra_models: tuple[str, ...] = ()
    #: The catalogue file; None: the one shipped with Moviola.
    catalog: Path | None = None
    #: Serve catalogue entries marked opt-in (licence restrictions).
    include_opt_in: bool = False
    #: Local folder or hub id with the model's weights (of ``model``); None: the catalogue's source.
    model_path: str | None = None
    #: Where videos are stored (local-disk storage).
    data_dir: Path = field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"))
    #: Where tiny random-weight models are built on first use.
    cache_dir: Path = field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))
    #: "auto" picks cuda when available, else cpu.
    device: str = "auto"
    #: "auto" is bfloat16 on cuda and float32 on cpu.
    dtype: str = "auto"
    #: Jobs waiting per server before submits get RESOURCE_EXHAUSTED.
    max_queue_depth: int = 64
    #: Seconds a draining server lets its running job finish after SIGTERM.
    drain_grace: float = 60.0
    #: Largest gRPC message in either direction.
    max_message_bytes: int = 16 * 1024 * 1024
    #: Finished jobs kept in memory for GetJob and WatchJob.
    retain_finished_jobs: int = 1000
    #: A batch job waiting longer than this starts ahead of interactive jobs.
    batch_max_wait: float = 300.0
    #: Name of this worker in STARTED events (and its Redis consumer name).
    worker_name: str = "embedded"
    #: Redis URL; set, ``serve`` is a stateless gateway and ``worker`` takes jobs from it.
    redis_url: str | None = None
    #: Seconds without a heartbeat after which a running job is taken over by another worker.
    lease: float = 30.0
    #: Seconds a job's event waits for more to share its publishing round trip (the terminal event never waits).
    event_linger: float = 0.005
    #: Runs of one job before it goes to the dead-letter stream.
    max_attempts: int = 3
    #: Write OpenTelemetry spans here as JSON lines; None: tracing is off.
    trace_file: Path | None = None
    #: Port of the Prometheus /metrics endpoint; None: no endpoint.
    metrics_port: int | None = None
    #: Seconds finished jobs and their events are kept (Redis).
    retention: float = 24 * 3600.0
    #: Triton's gRPC address (host:port) that Embed calls; None: the embedded server runs the encoders itself.
    triton_url: str | None = None
    #: In-process embeddings: serve the models of this Triton model repository; None: tiny random-weight ones.
    embed_repository: Path | None = None
    #: Embedding model for requests that name none; None: the first cross-modal (text and image) model.
    embed_model: str | None = None
    #: Embed requests served at once (apart from generation); more wait for a slot.
    embed_concurrency: int = 16
    #: Seconds one call to Triton may take.
    embed_timeout: float = 10.0
    #: Frames sampled from a video when the request does not say.
    embed_frames: int = 8
    #: Most frames one request may sample.
    embed_max_frames: int = 256
    #: Folders whose files ``video_uri`` may name, besides ``data_dir``.
    video_roots: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {self.port}")
        if self.max_queue_depth < 1:
            raise ValueError("max_queue_depth must be at least 1")
        if self.drain_grace < 0:
            raise ValueError("drain_grace must not be negative")
        if not 0 <= self.event_linger <= 1:
            raise ValueError("event_linger must be within 0..1 seconds")
        if self.lease <= 0 or self.max_attempts < 1:
            raise ValueError("lease must be positive and max_attempts at least 1")
        if self.embed_concurrency < 1 or self.embed_timeout <= 0:
            raise ValueError("embed_concurrency must be at least 1 and embed_timeout positive")
        if not 1 <= self.embed_frames <= self.embed_max_frames:
            raise ValueError("embed_frames must be within 1..embed_max_frames")
        if self.dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {self.dtype!r}")
