"""The server's commands: ``moviola serve``, ``moviola worker`` and ``moviola simulated-worker``.

    moviola serve                                   # embedded: everything in one process
    moviola serve --redis-url redis://HOST:6379/0   # a stateless gateway
    moviola worker --model M --redis-url ...        # one per GPU replica

They run as ``python -m moviola.runtime COMMAND``, and the client's ``moviola``
command finds them through the ``moviola.commands`` entry points this package
declares (the client never imports the server).
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from moviola.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from moviola.runtime.auth_commands import auth
from moviola.runtime.logs import setup_logging
from moviola.runtime.options import Duration, model_options
from moviola.runtime.signals import run_process
from moviola.settings import Settings


def _settings(options: dict[str, Any]) -> Settings:
    setup_logging(options.pop("log_level"), options.pop("log_format"))
    for key in ("data_dir", "cache_dir"):
        if options.get(key) is None:
            options.pop(key, None)  # the XDG default
    for key in ("extra_models", "video_roots", "webhook_secrets", "webhook_allow_hosts", "lora", "lora_dir"):
        if key in options:
            options[key] = tuple(options[key])
    try:
        settings = Settings.of(**options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    kept = settings.storage.video_retention
    if kept is not None and kept > settings.queue.retention:  # a job outlives nothing it shows
        settings = replace(settings, queue=replace(settings.queue, retention=kept))
    return settings


def _require_models(why: str) -> None:
    """A clear error where torch and diffusers are missing (a gateway install, ``pip install moviola``)."""
    import importlib.util

    missing = [name for name in ("torch", "diffusers") if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"{why}, and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
            "pip install 'moviola[worker]' (a gateway, with --redis-url, needs neither)"
        )


@click.command(context_settings={"auto_envvar_prefix": "MOVIOLA", "show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in containers).")
@click.option("--port", default=50051, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@click.option(
    "--redis-url",
    default=None,
    help="Run as a stateless gateway on this Redis (no model is loaded); rediss://USER:PASSWORD@HOST for TLS and ACLs.",
)
@click.option(
    "--redis-prefix", default="moviola:", help="Prefix of every Redis key (deployments sharing a Redis)."
)
@click.option(
    "--webhook-secret",
    "webhook_secrets",
    multiple=True,
    help="Sign webhooks with this Standard Webhooks secret (whsec_...); repeat to rotate. None: no webhooks.",
)
@click.option(
    "--webhook-allow-host",
    "webhook_allow_hosts",
    multiple=True,
    help="A host webhooks may reach although it is private or loopback (repeatable).",
)
@click.option(
    "--webhook-max-age", type=Duration(), default=3600.0, help="How long a failing webhook is retried."
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Also serve the OpenAI-compatible REST face (/v1/videos) on this port.",
)
@click.option(
    "--max-queue-depth", default=64, type=click.IntRange(min=1), help="Queued jobs per model before refusing."
)
@click.option(
    "--accept-without-workers",
    is_flag=True,
    help="Gateway: queue jobs for a model no live worker serves (scale-to-zero) instead of UNAVAILABLE.",
)
@click.option(
    "--also-serve", "extra_models", multiple=True, help="Embedded: one more model to serve (repeatable)."
)
@click.option("--include-opt-in", is_flag=True, help="Gateway: accept the catalogue's opt-in models too.")
@click.option("--triton-url", default=None, help="Triton's gRPC address (HOST:PORT) that Embed calls.")
@click.option(
    "--embed-repository",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Embedded, no Triton: run this Triton model repository's models in-process (default: tiny ones).",
)
@click.option("--embed-model", default=None, help="Embedding model for requests that name none.")
@click.option(
    "--embed-concurrency", default=16, type=click.IntRange(min=1), help="Embed requests served at once."
)
@click.option(
    "--embed-timeout", default=10.0, type=click.FloatRange(min=0.1), help="Seconds a call to Triton may take."
)
@click.option(
    "--embed-frames", default=8, type=click.IntRange(min=1), help="Frames sampled per video by default."
)
@click.option(
    "--search-index",
    default=None,
    help="Index every completed video for SearchVideos here: a folder, or s3://BUCKET/PREFIX that every "
    "gateway shares (docs/search.md). None: no search.",
)
@click.option(
    "--search-embedding-model",
    default=None,
    help="Embedding model of the search index (text and images). None: Embed's default for text.",
)
@click.option(
    "--video-root",
    "video_roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder whose files Embed's video_uri may name (repeatable; the data dir always).",
)
@click.option(
    "--auth-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Tenants and hashed API keys (moviola auth create-key); callers send 'authorization: Bearer KEY'. "
    "Re-read on SIGHUP.",
)
@click.option(
    "--reflection/--no-reflection",
    default=None,
    help="Serve gRPC reflection (default: on, off with --auth-file).",
    show_default=False,
)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None)
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Require client certificates signed by this CA (mTLS).",
)
@model_options
def serve(**options: Any) -> None:
    """Serve generation over gRPC. With no options: the embedded default (tiny model, no Redis)."""
    settings = _settings(options)
    if settings.queue.redis_url:
        from moviola.runtime.gateway import GatewayServer

        run_process(lambda: GatewayServer(settings))
    else:
        _require_models("the embedded server (no --redis-url) runs models itself")
        from moviola.runtime.embedded import EmbeddedServer

        run_process(lambda: EmbeddedServer(settings))


@click.command(context_settings={"auto_envvar_prefix": "MOVIOLA", "show_default": True})
@click.option("--redis-url", required=True, help="Redis the gateways queue jobs in (rediss:// for TLS).")
@click.option("--redis-prefix", default="moviola:", help="Prefix of every Redis key (the gateways' prefix).")
@click.option("--name", "worker_name", default=f"{socket.gethostname()}-{os.getpid()}", help="Worker name.")
@click.option(
    "--lease",
    default=30.0,
    type=click.FloatRange(min=1),
    help="Seconds before a silent worker's job is taken over.",
)
@click.option(
    "--max-attempts", default=3, type=click.IntRange(min=1), help="Runs of a job before it is dead-lettered."
)
@model_options
def worker(**options: Any) -> None:
    """Run jobs of one model from Redis, one at a time (one process per GPU replica)."""
    settings = _settings(options)
    _require_models("a worker runs models")
    from moviola.runtime.worker import WorkerProcess

    run_process(lambda: WorkerProcess(settings))


@click.command("simulated-worker")
@click.option("--redis-url", required=True)
@click.option("--redis-prefix", default="moviola:")
@click.option("--model", default=DEFAULT_MODEL, type=click.Choice(sorted(BUILTIN_MODELS)))
@click.option("--name", "worker_name", default=f"simulated-{os.getpid()}")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--step-seconds", default=0.0, type=float, help="Seconds each pretended denoising step takes.")
@click.option("--poison-prompt", default="", help="A job with this prompt kills the worker (SIGKILL).")
@click.option("--lease", default=30.0, type=float)
@click.option("--max-attempts", default=3, type=int)
@click.option("--drain-grace", default=60.0, type=float)
@click.option("--storage-url", default=None)
@click.option("--store-timeout", default=120.0, type=float)
@click.option("--log-level", default="info")
@click.option("--metrics-port", type=int, default=None)
def simulated_worker(step_seconds: float, poison_prompt: str, log_level: str, **options: Any) -> None:
    """The real worker with a pipeline that only pretends (no torch): for scheduler tests and benchmarks."""
    setup_logging(log_level)
    settings = Settings.of(**options)
    from moviola.pipelines.simulated import SimulatedPipeline
    from moviola.runtime.worker import WorkerProcess

    spec = BUILTIN_MODELS[settings.models.model]
    run_process(
        lambda: WorkerProcess(
            settings, loader=lambda _spec, _s: SimulatedPipeline(spec, step_seconds, poison_prompt)
        )
    )


#: ``python -m moviola.runtime NAME`` and the client CLI's ``moviola NAME`` (entry points ``moviola.commands``).
COMMANDS: dict[str, click.Command] = {
    "serve": serve,
    "worker": worker,
    "simulated-worker": simulated_worker,
    "auth": auth,
}
