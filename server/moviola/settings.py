"""The one settings object of a Moviola process, built once at start-up, in sections.

Each backend takes its own section (``queue`` for the job queues, ``embed`` for
the embedder...), and every option has its default here and nowhere else: the
command line leaves an option it was not given unset, and shows ``default_of``
and ``CHOICES`` in its help. ``Settings.of`` builds one from the flat option
names the command line uses:

    Settings.of(port=0, redis_url="redis://127.0.0.1:6379/0", max_queue_depth=8)

Only it (through ``moviola.environment``) reads the environment (the XDG folders, the S3
endpoint and region, the secret files of ``SECRET_FILES``); every other module takes
what it needs from here.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from moviola.catalog import DEFAULT_MODEL, MEMORY_PLANS, QUANTIZATIONS, SPEED_PROFILES
from moviola.environment import environment, secrets_from_files, xdg

#: How ``--gpus`` splits a job (``moviola.pipelines.parallel``).
PARALLEL_MODES = ("cfg", "ulysses", "ring")
#: The values of the options that take one of a few (the command line's choices); "auto" decides at load.
CHOICES: dict[str, tuple[str, ...]] = {
    "speed_profile": SPEED_PROFILES,
    "quantize": ("auto", *QUANTIZATIONS),
    "dtype": ("auto", "float32", "float16", "bfloat16"),
    "memory_plan": ("auto", *MEMORY_PLANS),
    "parallel": ("auto", *PARALLEL_MODES),
}
#: What a Redis key prefix may contain: no spaces or glob characters, ends with ':'.
_REDIS_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,63}:$")


def _either(choices: tuple[str, ...]) -> str:
    """``a, b or c``; a longer list as ``a or one of b, c, d, e``."""
    if len(choices) > 4:
        return f"{choices[0]} or one of {', '.join(choices[1:])}"
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def check_redis_prefix(prefix: str) -> str:
    """The prefix, or ValueError saying what a prefix may be."""
    if not _REDIS_PREFIX.match(prefix):
        raise ValueError(
            f"redis prefix {prefix!r}: letters, digits, '_', '.', '-' and ':', up to 64, ending with ':'"
        )
    return prefix


@dataclass(frozen=True)
class ServerSettings:
    """The process and its ports."""

    host: str = "127.0.0.1"
    #: gRPC port; 0 picks a free one.
    port: int = 50051
    #: Seconds a draining process lets accepted work finish after SIGTERM.
    drain_grace: float = 60.0
    #: Open Generate/WatchJob streams (and SSE event streams) a front takes; past it: RESOURCE_EXHAUSTED.
    max_streams: int = 20_000
    #: Largest gRPC message in either direction.
    max_message_bytes: int = 16 * 1024 * 1024
    #: Write OpenTelemetry spans here as JSON lines; None: tracing is off.
    trace_file: Path | None = None
    #: Port of the Prometheus /metrics endpoint; None: no endpoint.
    metrics_port: int | None = None
    #: Address /metrics listens on; None: a front's ``host``, a worker's 127.0.0.1 (public only when asked).
    metrics_host: str | None = None
    #: Serve the REST face (``/v1/videos``, OpenAI-compatible) on this port; None: gRPC only.
    http_port: int | None = None
    #: Serve the browser console (``moviola/console/``) at ``/`` of the HTTP port; off: the REST face alone.
    console: bool = True
    #: Standard Webhooks secrets (``whsec_...``) deliveries are signed with, every one (rotation); none: no webhooks.
    webhook_secrets: tuple[str, ...] = ()
    #: Hosts webhooks may reach although they resolve to private, loopback or link-local addresses.
    webhook_allow_hosts: tuple[str, ...] = ()
    #: Seconds after its event a delivery is retried before it is given up on.
    webhook_max_age: float = 3600.0

    #: Tenants and their hashed API keys (``moviola auth create-key``); None: no authentication.
    auth_file: Path | None = None
    #: Serve gRPC reflection; None: on without an auth file, off with one.
    reflection: bool | None = None
    #: PEM certificate chain and private key: serve TLS instead of plaintext.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: PEM CA bundle: require client certificates signed by it (mTLS).
    tls_client_ca: Path | None = None

    @property
    def serves_reflection(self) -> bool:
        return self.reflection if self.reflection is not None else self.auth_file is None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(
                "tls_client_ca needs tls_cert and tls_key (mTLS is TLS with client certificates)"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {self.port}")
        if self.drain_grace < 0:
            raise ValueError("drain_grace must not be negative")


@dataclass(frozen=True)
class ModelSettings:
    """Which models this process serves and how it loads them."""

    model: str = DEFAULT_MODEL
    #: More models the embedded server serves beside ``model`` (one worker each).
    extra_models: tuple[str, ...] = ()
    #: The catalogue file; None: the one shipped with Moviola.
    catalog: Path | None = None
    #: Serve catalogue entries marked opt-in (licence restrictions).
    include_opt_in: bool = False
    #: More names for served models, each ``ALIAS=MODEL`` (``sora-2=wan2.2-t2v-a14b``); before the catalogue's.
    model_aliases: tuple[str, ...] = ()
    #: Refuse sizes a model does not make (400 naming ``size``) instead of mapping Sora's to the nearest.
    strict_sizes: bool = False
    #: The longest video, in seconds, for every model (segments past one window); None: the catalogue's.
    max_seconds: float | None = None
    #: Local folder or hub id with the model's weights (of ``model``); None: the catalogue's source.
    model_path: str | None = None
    #: Where tiny random-weight models are built on first use.
    cache_dir: Path = field(default_factory=lambda: xdg("XDG_CACHE_HOME", ".cache"))
    #: "auto" picks cuda when available, else cpu.
    device: str = "auto"
    #: The speed profile of requests that name none (``catalog.SPEED_PROFILES``; turbo where the model has one).
    speed_profile: str = "exact"
    #: How the transformers' weights are stored (``catalog.QUANTIZATIONS``); "auto": the memory plan's.
    quantize: str = "auto"
    #: diffusers' attention backend for the transformers ("native", "flash", "_flash_3", "sage"...); None: its default.
    attention_backend: str | None = None
    #: "auto" is bfloat16 on cuda and float32 on cpu.
    dtype: str = "auto"
    #: How the model is kept on the card (``catalog.MEMORY_PLANS``); "auto": the catalogue's first that fits.
    memory_plan: str = "auto"
    #: Compile the transformers' repeated blocks at load, warming them up before the worker is ready.
    compile: bool = False
    #: Where compiled kernels are kept across restarts; None: ``cache_dir/compile``.
    compile_cache_dir: Path | None = None
    #: Devices one worker spans (``moviola.pipelines.parallel``), and how it splits the work.
    gpus: int = 1
    #: "cfg" (2 ranks: the guidance passes at once), "ulysses" or "ring" (context parallel); "auto": cfg on 2.
    parallel: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.gpus <= 16:
            raise ValueError(f"gpus must be within 1..16, got {self.gpus}")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be {_either(choices)}, got {getattr(self, name)!r}")

    @property
    def compile_cache(self) -> Path | None:
        """The compile cache folder when compiling, else None."""
        if not self.compile:
            return None
        return self.compile_cache_dir or self.cache_dir / "compile"


@dataclass(frozen=True)
class AdapterSettings:
    """The LoRA adapters this process registers (``moviola.adapters``) and how a worker keeps them."""

    #: A TOML file of ``[[adapter]]`` entries; None: only the shipped catalogue and the flags below.
    catalog: Path | None = None
    #: ``NAME=SOURCE`` adapters of the served model's family (``--lora``).
    loras: tuple[str, ...] = ()
    #: Folders (or ``s3://BUCKET/PREFIX/``) whose files and subfolders are adapters of the served model's
    #: family (``--lora-dir``).
    dirs: tuple[str, ...] = ()
    #: Adapters a worker keeps loaded beside its base weights (least recently used ones are unloaded).
    cache: int = 8
    #: Fuse the active adapters into the base weights (faster steps; switching sets costs a re-fuse).
    fuse: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.cache <= 256:
            raise ValueError(f"lora_cache must be within 1..256, got {self.cache}")


@dataclass(frozen=True)
class QueueSettings:
    """The job queue: in memory (embedded) or Redis (gateways and workers)."""

    #: Redis URL; set, ``serve`` is a stateless gateway and ``worker`` takes jobs from it.
    redis_url: str | None = None
    #: Prefix of every Redis key (several deployments can share one Redis); letters, digits, ``_.-:``, ends with ':'.
    redis_prefix: str = "moviola:"
    #: Jobs waiting per model before submits get RESOURCE_EXHAUSTED (both backends).
    max_queue_depth: int = 64
    #: Finished jobs kept in memory for GetJob and WatchJob (embedded).
    retain_finished_jobs: int = 1000
    #: Seconds a finished job's record and events are kept (Redis), for GetJob, WatchJob and ListJobs.
    record_retention: float = 24 * 3600.0
    #: A batch job waiting longer than this starts ahead of interactive jobs.
    batch_max_wait: float = 300.0
    #: Seconds without a renewal after which a worker's running job is taken over (the worker's own claim).
    lease: float = 30.0
    #: Runs of one job before it goes to the dead-letter stream.
    max_attempts: int = 3
    #: Accept jobs for a model that no live worker serves (they wait; for scale-to-zero), instead of UNAVAILABLE.
    accept_without_workers: bool = False
    #: Redis connections a process opens at most (its pool); a command beyond them waits for a free one.
    redis_max_connections: int = 64
    #: Seconds a command waits for a free connection before the call fails UNAVAILABLE.
    redis_pool_timeout: float = 5.0

    def __post_init__(self) -> None:
        check_redis_prefix(self.redis_prefix)
        if self.max_queue_depth < 1:
            raise ValueError("max_queue_depth must be at least 1")
        if self.lease <= 0 or self.max_attempts < 1:
            raise ValueError("lease must be positive and max_attempts at least 1")
        if self.redis_max_connections < 4:
            raise ValueError("redis_max_connections must be at least 4 (the event feed holds one)")


@dataclass(frozen=True)
class WorkerSettings:
    #: Name of this worker in STARTED events (and its Redis consumer name).
    name: str = "embedded"
    #: Seconds a job's event waits for more to share its publishing round trip (the terminal event never waits).
    event_linger: float = 0.005
    #: Seconds storing a finished video is retried while the storage is unreachable before the job fails.
    store_timeout: float = 120.0
    #: Queued jobs that share a batch key (size, frames, steps, profile) run as one batch, up to this many.
    max_batch: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.event_linger <= 1:
            raise ValueError("event_linger must be within 0..1 seconds")
        if not 1 <= self.max_batch <= 16:
            raise ValueError(f"max_batch must be within 1..16, got {self.max_batch}")


@dataclass(frozen=True)
class StorageSettings:
    #: The server's own folder; with local-disk storage its ``videos/`` holds the videos.
    data_dir: Path = field(default_factory=lambda: xdg("XDG_DATA_HOME", ".local/share"))
    #: Where videos go: ``file:///PATH`` or ``s3://BUCKET/PREFIX``; None: ``file://DATA_DIR/videos``.
    storage_url: str | None = None
    #: Seconds a download link (a presigned S3 URL) works.
    url_ttl: float = 3600.0
    #: Seconds after a job completes that its files (video and poster) are deleted; None: kept until deleted.
    #: (``queue.record_retention`` is how long the job's record is kept; the commands raise it to this.)
    video_retention: float | None = None
    #: The S3 server when not AWS's (MinIO, SeaweedFS...), for storage, adapters and the search index: the
    #: environment's ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``, as boto3 reads them.
    s3_endpoint: str | None = field(
        default_factory=lambda: environment("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )
    #: The S3 region for the search index (boto3 finds its own): ``AWS_REGION`` or ``AWS_DEFAULT_REGION``.
    s3_region: str | None = field(default_factory=lambda: environment("AWS_REGION", "AWS_DEFAULT_REGION"))

    def __post_init__(self) -> None:
        if not 1 <= self.url_ttl <= 7 * 24 * 3600:  # S3's longest presigned link is 7 days
            raise ValueError("url_ttl must be within 1 second..7 days")
        if self.video_retention is not None and self.video_retention <= 0:
            raise ValueError("retention must be positive")


@dataclass(frozen=True)
class EmbedSettings:
    #: Triton's gRPC address (host:port) that Embed calls; None: the embedded server runs the encoders itself.
    triton_url: str | None = None
    #: In-process embeddings: serve the models of this Triton model repository; None: tiny random-weight ones.
    repository: Path | None = None
    #: Embedding model for requests that name none; None: the first cross-modal (text and image) model.
    model: str | None = None
    #: Embed requests served at once (apart from generation); more wait for a slot.
    concurrency: int = 16
    #: Seconds one call to Triton may take.
    timeout: float = 10.0
    #: Frames sampled from a video when the request does not say.
    frames: int = 8
    #: Most frames one request may sample.
    max_frames: int = 256
    #: Folders whose files ``video_uri`` may name, besides the data dir.
    video_roots: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.timeout <= 0:
            raise ValueError("embed_concurrency must be at least 1 and embed_timeout positive")
        if not 1 <= self.frames <= self.max_frames:
            raise ValueError("embed_frames must be within 1..embed_max_frames")


@dataclass(frozen=True)
class SearchSettings:
    #: Where the video index lives: a folder, ``file:///PATH`` or ``s3://BUCKET/PREFIX``; None: no search.
    index_url: str | None = None
    #: Embedding model of the index (text and images); None: the embedder's default for text.
    embedding_model: str | None = None

    @property
    def enabled(self) -> bool:
        return self.index_url is not None


#: Section field names that are not option names themselves (their options are renamed below).
_SHADOWED = ("name", "repository", "index_url", "embedding_model", "loras", "dirs", "cache", "fuse")
#: Flat option names (the command line's) whose field name in their section differs.
_RENAMED = {
    "worker_name": ("worker", "name"),
    "embed_repository": ("embed", "repository"),
    "embed_model": ("embed", "model"),
    "embed_concurrency": ("embed", "concurrency"),
    "embed_timeout": ("embed", "timeout"),
    "embed_frames": ("embed", "frames"),
    "embed_max_frames": ("embed", "max_frames"),
    "search_index": ("search", "index_url"),
    "search_embedding_model": ("search", "embedding_model"),
    "lora_catalog": ("adapters", "catalog"),
    "lora": ("adapters", "loras"),
    "lora_dir": ("adapters", "dirs"),
    "lora_cache": ("adapters", "cache"),
    "fuse_lora": ("adapters", "fuse"),
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    adapters: AdapterSettings = field(default_factory=AdapterSettings)

    @classmethod
    def of(cls, **options: Any) -> Settings:
        """Settings from flat option names (``port``, ``redis_url``, ``embed_model``...); ValueError on unknown ones."""
        built = cls()
        sections: dict[str, dict[str, Any]] = {section.name: {} for section in fields(cls)}
        for name, value in options.items():
            if name not in _OWNERS:
                raise ValueError(f"unknown setting {name!r}")
            section_name, key = _OWNERS[name]
            sections[section_name][key] = value
        settings = replace(
            built, **{name: replace(getattr(built, name), **values) for name, values in sections.items()}
        )
        kept = settings.storage.video_retention
        if kept is not None and kept > settings.queue.record_retention:  # a job outlives nothing it shows
            settings = replace(settings, queue=replace(settings.queue, record_retention=kept))
        return settings._with_secret_files()

    def _with_secret_files(self) -> Settings:
        """These settings with the secrets read from the files that ``SECRET_FILES`` name."""
        redis_url, webhook_secrets = secrets_from_files(self.queue.redis_url, self.server.webhook_secrets)
        return replace(
            self,
            queue=replace(self.queue, redis_url=redis_url),
            server=replace(self.server, webhook_secrets=webhook_secrets),
        )


#: Each section's class, by its name in ``Settings``.
_SECTIONS: dict[str, Any] = get_type_hints(Settings)


def _owners() -> dict[str, tuple[str, str]]:
    """Each flat option name and the (section, field) it sets."""
    owners: dict[str, tuple[str, str]] = {}
    for section, kind in _SECTIONS.items():
        for option in fields(kind):
            if option.name not in _SHADOWED:
                owners.setdefault(option.name, (section, option.name))  # "model": the generation model's
    return owners | _RENAMED


_OWNERS = _owners()


def default_of(option: str) -> Any:
    """The value a flat option name has when it is not given (what ``--help`` shows); KeyError on unknown ones.

    >>> default_of("lease")
    30.0
    """
    section, key = _OWNERS[option]
    spec = next(f for f in fields(_SECTIONS[section]) if f.name == key)
    return spec.default_factory() if spec.default_factory is not MISSING else spec.default
