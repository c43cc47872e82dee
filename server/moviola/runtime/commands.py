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
from pathlib import Path
from typing import Any

import click

from moviola.catalog import BUILTIN_MODELS
from moviola.runtime.auth_commands import auth
from moviola.runtime.logs import setup_logging
from moviola.runtime.options import Duration, model_options, setting
from moviola.runtime.signals import run_process
from moviola.settings import Settings


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """The options given (flags or environment); the rest stay unset, so that the settings' defaults apply."""
    return {
        name: tuple(value) if isinstance(value, list | tuple) else value
        for name, value in options.items()
        if value is not None and value != ()
    }


def _settings(options: dict[str, Any]) -> Settings:
    setup_logging(options.pop("log_level"), options.pop("log_format"))
    try:
        settings = Settings.of(**_given(options))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
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
@setting("--host", help="Address to listen on (0.0.0.0 in containers).")
@setting("--port", type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@setting(
    "--redis-url",
    help="Run as a stateless gateway on this Redis (no model is loaded); rediss://USER:PASSWORD@HOST for TLS and ACLs.",
)
@setting("--redis-prefix", help="Prefix of every Redis key (deployments sharing a Redis).")
@setting(
    "--redis-max-connections",
    type=click.IntRange(min=4),
    help="Redis connections this process opens at most; commands beyond them wait for a free one.",
)
@setting(
    "--webhook-secret",
    "webhook_secrets",
    multiple=True,
    help="Sign webhooks with this Standard Webhooks secret (whsec_...); repeat to rotate. None: no webhooks.",
)
@setting(
    "--webhook-allow-host",
    "webhook_allow_hosts",
    multiple=True,
    help="A host webhooks may reach although it is private or loopback (repeatable).",
)
@setting("--webhook-max-age", type=Duration(), help="How long a failing webhook is retried.")
@setting(
    "--http-port",
    type=click.IntRange(0, 65535),
    help="Also serve the OpenAI-compatible REST face (/v1/videos) on this port.",
)
@setting(
    "--console/--no-console",
    help="Serve the browser console at / of the HTTP port (docs/console.md).",
)
@setting("--max-queue-depth", type=click.IntRange(min=1), help="Queued jobs per model before refusing.")
@setting(
    "--max-streams",
    type=click.IntRange(min=1),
    help="Open event streams (Generate, WatchJob, SSE) this server takes; past them: RESOURCE_EXHAUSTED.",
)
@setting(
    "--accept-without-workers",
    is_flag=True,
    help="Gateway: queue jobs for a model no live worker serves (scale-to-zero) instead of UNAVAILABLE.",
)
@setting(
    "--also-serve", "extra_models", multiple=True, help="Embedded: one more model to serve (repeatable)."
)
@setting("--include-opt-in", is_flag=True, help="Gateway: accept the catalogue's opt-in models too.")
@setting(
    "--model-alias",
    "model_aliases",
    multiple=True,
    help="ALIAS=MODEL: one more name for a served model (repeatable); sora-2 and sora-2-pro have defaults "
    "(docs/migrating-from-sora.md).",
)
@setting(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="The longest video for every model, made as segments past one window (default: the catalogue's, 20 s).",
)
@setting(
    "--strict-sizes",
    is_flag=True,
    help="Refuse Sora's sizes a model does not make (400 naming size) instead of making its nearest size.",
)
@setting("--triton-url", help="Triton's gRPC address (HOST:PORT) that Embed calls.")
@setting(
    "--embed-repository",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Embedded, no Triton: run this Triton model repository's models in-process (default: tiny ones).",
)
@setting("--embed-model", help="Embedding model for requests that name none.")
@setting("--embed-concurrency", type=click.IntRange(min=1), help="Embed requests served at once.")
@setting("--embed-timeout", type=click.FloatRange(min=0.1), help="Seconds a call to Triton may take.")
@setting("--embed-frames", type=click.IntRange(min=1), help="Frames sampled per video by default.")
@setting(
    "--search-index",
    help="Index every completed video for SearchVideos here: a folder, or s3://BUCKET/PREFIX that every "
    "gateway shares (docs/search.md). None: no search.",
)
@setting(
    "--search-embedding-model",
    help="Embedding model of the search index (text and images). None: Embed's default for text.",
)
@setting(
    "--video-root",
    "video_roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder whose files Embed's video_uri may name (repeatable; the data dir always).",
)
@setting(
    "--auth-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Tenants and hashed API keys (moviola auth create-key); callers send 'authorization: Bearer KEY'. "
    "Re-read on SIGHUP.",
)
@setting("--reflection/--no-reflection", help="Serve gRPC reflection (default: on, off with --auth-file).")
@setting("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@setting("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@setting(
    "--tls-client-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
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
@setting("--redis-url", required=True, help="Redis the gateways queue jobs in (rediss:// for TLS).")
@setting("--redis-prefix", help="Prefix of every Redis key (the gateways' prefix).")
# Not the settings' default ("embedded"): each worker process is named after its host and process.
@click.option("--name", "worker_name", default=f"{socket.gethostname()}-{os.getpid()}", help="Worker name.")
@setting("--lease", type=click.FloatRange(min=1), help="Seconds before a silent worker's job is taken over.")
@setting("--max-attempts", type=click.IntRange(min=1), help="Runs of a job before it is dead-lettered.")
@model_options
def worker(**options: Any) -> None:
    """Run jobs of one model from Redis, one at a time (one process per GPU replica)."""
    settings = _settings(options)
    _require_models("a worker runs models")
    from moviola.runtime.worker import WorkerProcess

    run_process(lambda: WorkerProcess(settings))


@click.command("simulated-worker")
@setting("--redis-url", required=True)
@setting("--redis-prefix")
@setting("--model", type=click.Choice(sorted(BUILTIN_MODELS)))
@click.option("--name", "worker_name", default=f"simulated-{os.getpid()}")
@setting("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--step-seconds", default=0.0, type=float, help="Seconds each pretended denoising step takes.")
@click.option("--poison-prompt", default="", help="A job with this prompt kills the worker (SIGKILL).")
@setting("--lease", type=float)
@setting("--max-attempts", type=int)
@setting("--drain-grace", type=float)
@setting("--storage-url")
@setting("--store-timeout", type=float)
@click.option("--log-level", default="info")
@setting("--metrics-port", type=int)
@setting("--metrics-host")
def simulated_worker(step_seconds: float, poison_prompt: str, log_level: str, **options: Any) -> None:
    """The real worker with a pipeline that only pretends (no torch): for scheduler tests and benchmarks."""
    setup_logging(log_level)
    settings = Settings.of(**_given(options))
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
