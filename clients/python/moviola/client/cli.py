"""The ``moviola`` command.

``generate``, ``jobs`` and ``models`` need only this client package;
``serve`` needs the server package (``pip install moviola``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import unquote, urlparse

import click
from rich.console import Console
from rich.table import Table

from moviola.client._sync import DEFAULT_SERVER, Client
from moviola.client.errors import MoviolaError
from moviola.client.progress import as_json, describe, follow
from moviola.v1 import job_pb2 as pb

server_option = click.option(
    "--server",
    default=DEFAULT_SERVER,
    show_default=True,
    envvar="MOVIOLA_SERVER",
    help="HOST:PORT of a gateway.",
)
stderr = Console(stderr=True)


def _fail(error: MoviolaError) -> click.ClickException:
    hint = f" (retry in {error.retry_after:.1f}s)" if error.retry_after else ""
    return click.ClickException(f"{error.code.name}: {error.message}{hint}")


@contextmanager
def _connected(server: str) -> Iterator[Client]:
    """A client of the gateway at SERVER; an error from it ends the command with one clear line."""
    with Client(server) as client:
        try:
            yield client
        except MoviolaError as error:
            raise _fail(error) from error


@click.group()
@click.version_option(package_name="moviola-client")
def main() -> None:
    """Moviola: self-hosted video generation over gRPC."""


#: Commands the server package provides (entry points ``moviola.commands``), with help for when it is absent.
SERVER_COMMANDS = {
    "serve": "Run a server: embedded, or a gateway with --redis-url (needs the server package).",
    "worker": "Run a GPU worker that takes jobs from Redis (needs the server package).",
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


def _copy_video(uri: str, out: Path) -> None:
    parsed = urlparse(uri)
    source = Path(unquote(parsed.path))
    if parsed.scheme != "file" or not source.is_file():
        raise click.ClickException(
            f"the video is at {uri}, which this machine cannot read; fetch it from there"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out)


def _run_to_end(client: Client, events: Iterator[pb.JobEvent], as_json_lines: bool) -> pb.JobEvent:
    """Follow a job; on Ctrl-C cancel it on the server."""
    seen: list[str] = []

    def remember() -> Iterator[pb.JobEvent]:
        for event in events:
            if not seen:
                seen.append(event.job_id)
                if not as_json_lines:
                    stderr.print(f"job [bold]{event.job_id}[/bold] on model {event.model}")
            yield event

    try:
        terminal = follow(remember(), stderr, json_lines=as_json_lines)
    except KeyboardInterrupt:
        if seen:
            client.cancel(seen[0])
            stderr.print(f"cancelled job {seen[0]} on the server")
        raise SystemExit(130) from None
    if terminal is None:
        raise click.ClickException(
            "the stream ended before the job finished; `moviola jobs watch ID` resumes it"
        )
    return terminal


def _finish(terminal: pb.JobEvent, out: Path | None, client: Client) -> None:
    kind = terminal.WhichOneof("kind")
    if kind != "completed":
        raise click.ClickException(describe(terminal))
    done = terminal.completed
    where = done.video_uri
    if out is not None:
        _copy_video(done.video_uri, out)
        where = str(out)
    running = done.timings.running.ToNanoseconds() / 1e9
    stderr.print(
        f"[green]video:[/green] {where}  ({done.width}x{done.height}, {done.num_frames} frames at {done.fps} fps, "
        f"seed {done.seed}, {running:.1f}s)"
    )
    noise = [m.id for m in client.list_models() if m.random_weights and m.id == done.model]
    if noise:
        stderr.print(
            f"note: {done.model} has random weights, so the video is noise; serve real weights with --model-path"
        )


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
@click.option("--width", type=int, default=0)
@click.option("--height", type=int, default=0)
@click.option("--frames", "num_frames", type=int, default=0, help="Number of frames (Wan: 4k+1).")
@click.option("--fps", type=int, default=0)
@click.option("--steps", "num_inference_steps", type=int, default=0)
@click.option("--guidance", "guidance_scale", type=float, default=None)
@click.option("--guidance-2", "guidance_scale_2", type=float, default=None, help="Low-noise expert guidance.")
@click.option("--seed", type=int, default=None)
@click.option("--priority", type=click.Choice(["interactive", "batch"]), default="interactive")
@click.option("--max-wait", type=float, default=None, help="Seconds the job may wait to start.")
@click.option("--idempotency-key", default="")
@click.option(
    "--json", "json_lines", is_flag=True, help="Print events as JSON lines instead of a progress bar."
)
def generate(
    prompt: str, server: str, out: Path | None, image: Path | None, json_lines: bool, **options: object
) -> None:
    """Generate a video from PROMPT, showing progress; Ctrl-C cancels the job."""
    if image is not None:
        options["image"] = image.read_bytes()
    with _connected(server) as client:
        terminal = _run_to_end(client, client.generate(prompt, **options), json_lines)  # type: ignore[arg-type]
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
@click.option("--frames", "frame_count", type=int, default=0, help="Video: frames to sample.")
@click.option("--pooling", type=click.Choice(["mean", "temporal"]), default="mean")
@click.option("--per-frame", "return_frame_embeddings", is_flag=True, help="Video: also print frame vectors.")
@server_option
def embed(text: str | None, image: Path | None, video: Path | None, server: str, **options: object) -> None:
    """Print the embedding of a text, image, video or job's video as JSON."""
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
    with _connected(server) as client:
        response = client.embed(**given, **options)  # type: ignore[arg-type]
    click.echo(json_format.MessageToJson(response))


@main.group()
def jobs() -> None:
    """Inspect, follow and cancel jobs."""


@jobs.command("get")
@click.argument("job_id")
@server_option
def jobs_get(job_id: str, server: str) -> None:
    """Print a job as JSON."""
    from google.protobuf import json_format

    with _connected(server) as client:
        click.echo(json_format.MessageToJson(client.get(job_id)))


@jobs.command("watch")
@click.argument("job_id")
@server_option
@click.option("--after", "after_sequence", type=int, default=0, help="Resume after this sequence number.")
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write the MP4 here.")
@click.option("--json", "json_lines", is_flag=True, help="Print events as JSON lines.")
def jobs_watch(job_id: str, server: str, after_sequence: int, out: Path | None, json_lines: bool) -> None:
    """Follow a job until it ends (resumable with --after)."""
    with _connected(server) as client:
        terminal = follow(client.watch(job_id, after_sequence), stderr, json_lines=json_lines)
        if terminal is not None and not json_lines:
            _finish(terminal, out, client)


@jobs.command("cancel")
@click.argument("job_id")
@server_option
def jobs_cancel(job_id: str, server: str) -> None:
    """Cancel a queued or running job."""
    with _connected(server) as client:
        job = client.cancel(job_id)
    click.echo(
        f"{job.id}: {pb.JobState.Name(job.state).removeprefix('JOB_STATE_').lower()} (cancel requested)"
    )


@jobs.command("dead-letters")
@server_option
def jobs_dead_letters(server: str) -> None:
    """List jobs given up on after too many attempts."""
    with _connected(server) as client:
        letters = client.dead_letters()
    if not letters:
        click.echo("no dead letters")
    for d in letters:
        click.echo(f"{d.job_id}  {d.model}  {d.attempts} attempts  {d.time.ToJsonString()}  {d.error}")


@jobs.command("requeue")
@click.argument("job_id")
@server_option
def jobs_requeue(job_id: str, server: str) -> None:
    """Run a dead-lettered job's request again, as a new job."""
    with _connected(server) as client:
        job = client.requeue(job_id)
    click.echo(f"requeued {job_id} as {job.id}")


@main.command()
@server_option
@click.option("--json", "json_out", is_flag=True)
def models(server: str, json_out: bool) -> None:
    """List the models the server serves, with defaults and limits."""
    with _connected(server) as client:
        infos = client.list_models()
    if json_out:
        from google.protobuf import json_format

        for info in infos:
            click.echo(json_format.MessageToJson(info, indent=None))
        return
    table = Table("model", "ready", "defaults", "limits", "notes")
    for m in infos:
        d, lim = m.defaults, m.limits
        notes = [
            "mixture of experts" if m.mixture_of_experts else "",
            "random weights (noise)" if m.random_weights else "",
        ]
        table.add_row(
            m.id,
            "yes" if m.ready else "no",
            f"{d.width}x{d.height}, {d.num_frames} frames @ {d.fps} fps, {d.num_inference_steps} steps",
            f"sizes {lim.min_size}..{lim.max_size} step {lim.size_multiple}, frames {lim.frame_multiple}k+1 "
            f"<= {lim.max_frames}, steps <= {lim.max_steps}",
            ", ".join(n for n in notes if n),
        )
    Console().print(table)


@main.command("embedding-models")
@server_option
def embedding_models(server: str) -> None:
    """List the embedding models the server serves."""
    with _connected(server) as client:
        infos = client.list_embedding_models()
    table = Table("model", "text", "images", "default for")
    for m in infos:
        defaults = [
            kind for kind, on in (("text", m.default_for_text), ("images", m.default_for_images)) if on
        ]
        images = f"yes ({m.image_size} px)" if m.accepts_images else "no"
        table.add_row(m.id, "yes" if m.accepts_text else "no", images, ", ".join(defaults))
    Console().print(table)


__all__ = ["as_json", "main"]

if __name__ == "__main__":
    main(prog_name="moviola")
