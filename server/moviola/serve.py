"""``moviola serve``: the server command (the client's ``moviola`` CLI dispatches here)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from moviola.catalog import BUILTIN_MODELS, DEFAULT_MODEL
from moviola.settings import Settings

log = logging.getLogger("moviola")


async def run(settings: Settings) -> None:
    from moviola.embedded import EmbeddedServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = EmbeddedServer(settings)
    starting = asyncio.create_task(server.start())
    await asyncio.wait({starting, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stopped while loading the model")
        starting.cancel()
        await server.stop()
        return
    starting.result()  # a failed start raises here
    await stop.wait()
    await server.drain()
    log.info("stopped")


@click.command(context_settings={"auto_envvar_prefix": "MOVIOLA", "show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in containers).")
@click.option("--port", default=50051, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@click.option(
    "--model", default=DEFAULT_MODEL, type=click.Choice(sorted(BUILTIN_MODELS)), help="Model to serve."
)
@click.option("--model-path", default=None, help="Local folder or hub id of the model's diffusers weights.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Where videos are stored.")
@click.option(
    "--cache-dir", type=click.Path(path_type=Path), default=None, help="Where tiny models are built."
)
@click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--dtype", default="auto", type=click.Choice(["auto", "float32", "float16", "bfloat16"]))
@click.option(
    "--max-queue-depth", default=64, type=click.IntRange(min=1), help="Queued jobs before refusing."
)
@click.option(
    "--drain-grace", default=60.0, type=click.FloatRange(min=0), help="Seconds to finish jobs on SIGTERM."
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    host: str,
    port: int,
    model: str,
    model_path: str | None,
    data_dir: Path | None,
    cache_dir: Path | None,
    device: str,
    dtype: str,
    max_queue_depth: int,
    drain_grace: float,
    log_level: str,
) -> None:
    """Serve generation over gRPC. With no options: the embedded default (tiny model, no Redis)."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("diffusers", "transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    extra = {k: v for k, v in {"data_dir": data_dir, "cache_dir": cache_dir}.items() if v is not None}
    settings = Settings(
        host=host,
        port=port,
        model=model,
        model_path=model_path,
        device=device,
        dtype=dtype,
        max_queue_depth=max_queue_depth,
        drain_grace=drain_grace,
        **extra,  # type: ignore[arg-type]
    )
    import uvloop

    try:
        uvloop.run(run(settings))
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
