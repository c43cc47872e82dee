"""``moviola serve`` and ``moviola worker`` (the client's ``moviola`` CLI dispatches here).

moviola serve                                   # embedded: everything in one process
moviola serve --redis-url redis://HOST:6379/0   # a stateless gateway
moviola worker --model M --redis-url ...        # one per GPU replica
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from moviola.catalog import DEFAULT_MODEL
from moviola.settings import Settings

log = logging.getLogger("moviola")
F = TypeVar("F", bound=Callable[..., Any])


class Process(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def drain(self, grace: float | None = None) -> None: ...


async def run_until_signalled(make: Callable[[], Process]) -> None:
    """Start; on SIGTERM or SIGINT drain (or, while still starting, just stop)."""
    process = make()  # inside the loop: gRPC's aio server binds to the running loop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(process.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopped while starting")
        starting.cancel()
        await process.stop()
        return
    try:
        starting.result()  # a failed start raises here
    except BaseException:
        stopping.cancel()
        await process.stop()
        raise
    await stop.wait()
    log.info("draining")
    await process.drain()
    log.info("stopped")


def setup_logging(level: str, fmt: str = "text") -> None:
    """Text for people, or one JSON object per line (with ``job_id`` where a job is concerned) for collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"}
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("moviola.announce").setLevel(logging.INFO)  # "listening on", "ready": always shown
    for noisy in ("diffusers", "transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def run_process(make: Callable[[], Process]) -> None:
    import uvloop

    try:
        uvloop.run(run_until_signalled(make))
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc


def model_options(func: F) -> F:
    for option in reversed(
        [
            click.option(
                "--model", default=DEFAULT_MODEL, help="Model id from the catalogue (`moviola models`)."
            ),
            click.option(
                "--catalog",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                help="Catalogue file (default: the one shipped with Moviola).",
            ),
            click.option(
                "--model-path", default=None, help="Local folder or hub id of the model's diffusers weights."
            ),
            click.option(
                "--data-dir", type=click.Path(path_type=Path), default=None, help="Where videos are stored."
            ),
            click.option(
                "--cache-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Where tiny models are built.",
            ),
            click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N."),
            click.option(
                "--dtype", default="auto", type=click.Choice(["auto", "float32", "float16", "bfloat16"])
            ),
            click.option(
                "--drain-grace",
                default=60.0,
                type=click.FloatRange(min=0),
                help="Seconds to finish work on SIGTERM.",
            ),
            click.option(
                "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
            ),
            click.option(
                "--log-format",
                default="text",
                type=click.Choice(["text", "json"]),
                help="json: one object a line.",
            ),
            click.option(
                "--trace-file",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="Trace jobs with OpenTelemetry; spans go here as JSON lines.",
            ),
            click.option(
                "--metrics-port",
                type=click.IntRange(1, 65535),
                default=None,
                help="Serve Prometheus /metrics here.",
            ),
        ]
    ):
        func = option(func)
    return func


def _settings(options: dict[str, Any]) -> Settings:
    setup_logging(options.pop("log_level"), options.pop("log_format"))
    paths = {k: options.pop(k) for k in ("data_dir", "cache_dir")}
    for key in ("extra_models", "video_roots"):
        if key in options:
            options[key] = tuple(options[key])
    try:
        return Settings(**options, **{k: v for k, v in paths.items() if v is not None})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command(context_settings={"auto_envvar_prefix": "MOVIOLA", "show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in containers).")
@click.option("--port", default=50051, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@click.option(
    "--redis-url", default=None, help="Run as a stateless gateway on this Redis (no model is loaded)."
)
@click.option(
    "--max-queue-depth", default=64, type=click.IntRange(min=1), help="Queued jobs per model before refusing."
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
    "--video-root",
    "video_roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder whose files Embed's video_uri may name (repeatable; the data dir always).",
)
@model_options
def serve(**options: Any) -> None:
    """Serve generation over gRPC. With no options: the embedded default (tiny model, no Redis)."""
    settings = _settings(options)
    if settings.redis_url:
        from moviola.distributed import GatewayServer

        run_process(lambda: GatewayServer(settings))
    else:
        from moviola.embedded import EmbeddedServer

        run_process(lambda: EmbeddedServer(settings))


@click.command(context_settings={"auto_envvar_prefix": "MOVIOLA", "show_default": True})
@click.option("--redis-url", required=True, help="Redis the gateways queue jobs in.")
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
    from moviola.distributed import WorkerProcess

    run_process(lambda: WorkerProcess(settings))
