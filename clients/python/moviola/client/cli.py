"""The ``moviola`` command.

``generate``, ``jobs`` and ``models`` need only this client package;
``serve`` needs the server package (``pip install moviola``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import click
from rich.console import Console

from moviola.client._characters_cli import characters
from moviola.client._cli_shared import (
    GUIDANCE,
    SEED,
    UINT32,
    _finish,
    _run_to_end,
    _wait_ready,
    save_previews,
    server_option,
    wait_ready_option,
)
from moviola.client._connect import connected
from moviola.client._eval_cli import eval_group
from moviola.client._jobs_cli import jobs
from moviola.client._output import compact_embedding, embedding_models_table, models_table
from moviola.client._request import lora
from moviola.client._search_cli import search_command
from moviola.client.progress import as_json


@click.group()
@click.version_option(package_name="moviola-client")
def main() -> None:
    """Moviola: self-hosted video generation over gRPC."""


#: Commands the server package provides (entry points ``moviola.commands``), with help for when it is absent.
SERVER_COMMANDS = {
    "serve": "Run a server: embedded, or a gateway with --redis-url (needs the server package).",
    "worker": "Run a GPU worker that takes jobs from Redis (needs the server package).",
    "auth": "Manage API keys in an auth file: create-key, revoke-key, list-keys (needs the server package).",
}


def _server_command(name: str) -> click.Command:
    """The server's command NAME, found through its entry point; the client never imports the server."""

    @main.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        add_help_option=False,
        help=SERVER_COMMANDS[name],
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        found = [e for e in entry_points(group="moviola.commands") if e.name == name]
        try:
            if not found:
                raise ImportError("no entry point moviola.commands:" + name)
            server_command = found[0].load()
        except ImportError as exc:
            raise click.ClickException(
                f"`moviola {name}` needs the Moviola server, and this is the client alone ({exc}): pip install moviola"
            ) from exc
        server_command.main(args=list(args), prog_name=f"moviola {name}")

    return command


serve = _server_command("serve")
worker = _server_command("worker")
auth = _server_command("auth")


@main.command()
@click.argument("prompt")
@server_option
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write the MP4 here.")
@click.option("--model", default="", help="Model id (default: the server's).")
@click.option("--negative-prompt", default="")
@click.option(
    "--image", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Input image (I2V)."
)
@click.option(
    "--resolution", default="", help="A size preset of the model, for example 480p (see `moviola models`)."
)
@click.option(
    "--allow-fallback", is_flag=True, help="Run on the model's faster fallback if it cannot start in time."
)
@click.option("--width", type=UINT32, default=0)
@click.option("--height", type=UINT32, default=0)
@click.option("--frames", "num_frames", type=UINT32, default=0, help="Number of frames (Wan: 4k+1).")
@click.option(
    "--character",
    "character_id",
    default="",
    help="A character's id (`moviola characters create`): its reference image instead of --image.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds of video instead of --frames; past one model window, made as segments.",
)
@click.option("--fps", type=UINT32, default=0)
@click.option("--steps", "num_inference_steps", type=UINT32, default=0)
@click.option("--guidance", "guidance_scale", type=GUIDANCE, default=None)
@click.option(
    "--guidance-2", "guidance_scale_2", type=GUIDANCE, default=None, help="Low-noise expert guidance."
)
@click.option("--seed", type=SEED, default=None)
@click.option("--priority", type=click.Choice(["interactive", "batch"]), default="interactive")
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds the job may wait to start.",
)
@click.option("--idempotency-key", default="")
@click.option(
    "--speed-profile",
    type=click.Choice(["exact", "fast", "turbo"]),
    default=None,
    help="exact, fast (a step cache; slightly different output) or turbo (the model's step-distilled "
    "adapter: a few steps, no guidance). Default: the worker's.",
)
@click.option(
    "--lora",
    "loras",
    multiple=True,
    metavar="NAME[:SCALE]",
    help="Apply a LoRA adapter the server registered (see `moviola models`); repeatable.",
)
@click.option(
    "--previews",
    type=click.Path(path_type=Path, file_okay=False),
    help="Save live previews here as step-NNNN.jpg (every step unless --preview-every).",
)
@click.option(
    "--preview-every",
    "preview_every",
    type=UINT32,
    default=None,
    help="A preview every N steps (and the last).",
)
@click.option(
    "--json", "json_lines", is_flag=True, help="Print events as JSON lines instead of a progress bar."
)
@wait_ready_option
def generate(
    prompt: str,
    server: str,
    out: Path | None,
    image: Path | None,
    previews: Path | None,
    json_lines: bool,
    wait_ready: float,
    **options: object,
) -> None:
    """Generate a video from PROMPT, showing progress; Ctrl-C cancels the job."""
    if image is not None:
        options["image"] = image.read_bytes()
    try:
        options["loras"] = [lora(str(item)) for item in options.pop("loras", None) or ()]  # type: ignore[attr-defined]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lora") from exc
    if previews is not None:
        previews.mkdir(parents=True, exist_ok=True)
        if options.get("preview_every") is None:
            options["preview_every"] = 1
    with connected(server) as client:
        _wait_ready(client, wait_ready)
        events = client.generate(prompt, **options)  # type: ignore[arg-type]
        if previews is not None:
            events = save_previews(events, previews)
        terminal = _run_to_end(client, events, json_lines)
        _finish(terminal, out, client)


@main.command()
@click.option("--text", default=None, help="Embed this text.")
@click.option(
    "--image", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Embed this image."
)
@click.option(
    "--video", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Embed this video."
)
@click.option("--job", "job_id", default=None, help="Embed the video of this completed job.")
@click.option("--model", default="", help="Embedding model (default: the server's).")
@click.option("--frames", "frame_count", type=UINT32, default=0, help="Video: frames to sample.")
@click.option("--pooling", type=click.Choice(["mean", "temporal"]), default="mean")
@click.option("--per-frame", "return_frame_embeddings", is_flag=True, help="Video: also print frame vectors.")
@click.option("--json", "full", is_flag=True, help="Print the whole response as protobuf JSON.")
@server_option
def embed(
    text: str | None, image: Path | None, video: Path | None, server: str, full: bool, **options: object
) -> None:
    """Print the embedding of a text, image, video or job's video as one line of JSON.

    {"model": ..., "dimension": N, "embedding": [...]}, with "sampled_frames" and "frames" for videos.
    """
    from google.protobuf import json_format

    data = {
        "text": text,
        "image": image.read_bytes() if image else None,
        "video": video.read_bytes() if video else None,
        "job_id": options.pop("job_id"),
    }
    given = {k: v for k, v in data.items() if v is not None}
    if len(given) != 1:
        raise click.UsageError("give exactly one of --text, --image, --video or --job")
    with connected(server) as client:
        response = client.embed(**given, **options)  # type: ignore[arg-type]
    click.echo(json_format.MessageToJson(response) if full else compact_embedding(response))


main.add_command(jobs)
main.add_command(characters)
main.add_command(eval_group)
main.add_command(search_command)


@main.command()
@server_option
@click.option("--json", "json_out", is_flag=True)
def models(server: str, json_out: bool) -> None:
    """List the models the server serves, with defaults and limits."""
    with connected(server) as client:
        infos = client.list_models()
    if json_out:
        from google.protobuf import json_format

        for info in infos:
            click.echo(json_format.MessageToJson(info, indent=None))
        return
    Console(highlight=False).print(models_table(infos))


@main.command("embedding-models")
@server_option
def embedding_models(server: str) -> None:
    """List the embedding models the server serves."""
    with connected(server) as client:
        infos = client.list_embedding_models()
    Console(highlight=False).print(embedding_models_table(infos))


__all__ = ["as_json", "main"]

if __name__ == "__main__":
    main(prog_name="moviola")
