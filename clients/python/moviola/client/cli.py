"""The ``moviola`` command.

``generate``, ``jobs`` and ``models`` need only this client package;
``serve`` needs the server package (``pip install moviola``).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from moviola.client._connect import connected, connection_options
from moviola.client._output import compact_embedding, embedding_models_table, models_table
from moviola.client._sync import Client
from moviola.client.progress import as_json, describe, follow, waiting_for_server
from moviola.v1 import job_pb2 as pb

server_option = connection_options
wait_ready_option = click.option(
    "--wait-ready",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="Seconds to wait for a server that is starting (0: do not wait).",
)
#: Bounds the server would refuse anyway, checked before anything is sent (0 means the model's default).
UINT32 = click.IntRange(0, 2**32 - 1)
SEED = click.IntRange(0, 2**63 - 1)
GUIDANCE = click.FloatRange(min=0)
FINISHED = {pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
#: Server strings (model ids, job ids, URIs, messages) are printed as they are: no markup, no highlighting,
#: which would colour the "2.2" inside "tiny-wan2.2-t2v".
stderr = Console(stderr=True, highlight=False)


def _state(state: pb.JobState.ValueType) -> str:
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def _wait_ready(client: Client, seconds: float) -> None:
    """Wait for a server that is still starting, with a spinner saying why; bounded by ``seconds``."""
    if seconds > 0:
        with waiting_for_server(stderr) as waiting:
            client.wait_ready(seconds, waiting=waiting)


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


def _run_to_end(client: Client, events: Iterator[pb.JobEvent], as_json_lines: bool) -> pb.JobEvent:
    """Follow a job; on Ctrl-C cancel it on the server."""
    seen: list[str] = []

    def remember() -> Iterator[pb.JobEvent]:
        for event in events:
            if not seen:
                seen.append(event.job_id)
                if not as_json_lines:
                    stderr.print(Text.assemble("job ", (event.job_id, "bold"), f" on model {event.model}"))
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
    where = done.download_url or done.video_uri
    if out is not None:  # through DownloadVideo: works against a remote server, whatever its storage
        client.download_to(terminal.job_id, out)
        where = str(out)
    running = done.timings.running.ToNanoseconds() / 1e9
    stderr.print(
        Text.assemble(
            ("video:", "green"),
            f" {where}  ({done.width}x{done.height}, {done.num_frames} frames at {done.fps} fps, "
            f"seed {done.seed}, {running:.1f}s)",
        )
    )
    noise = [m.id for m in client.list_models() if m.random_weights and m.id == done.model]
    if noise:
        stderr.print(
            Text(
                f"note: {done.model} has random weights, so the video is noise; serve real weights with --model-path"
            )
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
@click.option("--width", type=UINT32, default=0)
@click.option("--height", type=UINT32, default=0)
@click.option("--frames", "num_frames", type=UINT32, default=0, help="Number of frames (Wan: 4k+1).")
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
    "--json", "json_lines", is_flag=True, help="Print events as JSON lines instead of a progress bar."
)
@wait_ready_option
def generate(
    prompt: str,
    server: str,
    out: Path | None,
    image: Path | None,
    json_lines: bool,
    wait_ready: float,
    **options: object,
) -> None:
    """Generate a video from PROMPT, showing progress; Ctrl-C cancels the job."""
    if image is not None:
        options["image"] = image.read_bytes()
    with connected(server) as client:
        _wait_ready(client, wait_ready)
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


@main.group()
def jobs() -> None:
    """Inspect, follow and cancel jobs."""


@jobs.command("list")
@server_option
@click.option(
    "--state", type=click.Choice(["queued", "running", "completed", "failed", "cancelled"]), default=None
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Jobs to show.")
def jobs_list(server: str, state: str | None, limit: int) -> None:
    """Your jobs, newest first: id, state, model, created, prompt."""
    wanted = pb.JobState.Value(f"JOB_STATE_{state.upper()}") if state else pb.JOB_STATE_UNSPECIFIED
    shown, token = 0, ""
    with connected(server) as client:
        while shown < limit:
            page, token = client.list_jobs(page_size=min(100, limit - shown), page_token=token, state=wanted)
            for job in page:
                created = job.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
                click.echo(
                    f"{job.id}  {_state(job.state):<9}  {job.model}  {created}  {job.request.prompt[:60]}"
                )
            shown += len(page)
            if not token:
                break
    if shown == 0:
        click.echo("no jobs", err=True)


@jobs.command("get")
@click.argument("job_id")
@server_option
def jobs_get(job_id: str, server: str) -> None:
    """Print a job as JSON."""
    from google.protobuf import json_format

    with connected(server) as client:
        click.echo(json_format.MessageToJson(client.get(job_id)))


@jobs.command("watch")
@click.argument("job_id")
@server_option
@click.option(
    "--after",
    "after_sequence",
    type=click.IntRange(min=0),
    default=0,
    help="Resume after this sequence number.",
)
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write the MP4 here.")
@click.option("--json", "json_lines", is_flag=True, help="Print events as JSON lines.")
@wait_ready_option
def jobs_watch(
    job_id: str, server: str, after_sequence: int, out: Path | None, json_lines: bool, wait_ready: float
) -> None:
    """Follow a job until it ends (resumable with --after)."""
    with connected(server) as client:
        _wait_ready(client, wait_ready)
        terminal = follow(client.watch(job_id, after_sequence), stderr, json_lines=json_lines)
        if terminal is None:
            raise _nothing_after(client.get(job_id), after_sequence)
        if not json_lines:
            _finish(terminal, out, client)


def _nothing_after(job: pb.Job, after_sequence: int) -> click.ClickException:
    """Why a watch ended without a terminal event: the job had ended at or before --after, or the stream broke."""
    if job.state in FINISHED:
        return click.ClickException(
            f"job {job.id} already ended ({_state(job.state)}) at sequence {job.last_sequence}; "
            f"nothing after {after_sequence}"
        )
    return click.ClickException(
        f"the stream ended before job {job.id} finished; `moviola jobs watch {job.id} "
        f"--after {job.last_sequence}` resumes it"
    )


@jobs.command("download")
@click.argument("job_id")
@server_option
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--thumbnail", is_flag=True, help="The poster image (JPEG) instead of the video.")
def jobs_download(job_id: str, server: str, out: Path, thumbnail: bool) -> None:
    """Save a completed job's video (or poster) to OUT, from any server and any storage."""
    with connected(server) as client:
        size = client.download_to(job_id, out, thumbnail=thumbnail)
    stderr.print(Text(f"{out}: {size} bytes"))


@jobs.command("cancel")
@click.argument("job_id")
@server_option
def jobs_cancel(job_id: str, server: str) -> None:
    """Cancel a queued or running job; exits 1 if it had already finished."""
    with connected(server) as client:
        before = client.get(job_id)
        job = before if before.state in FINISHED else client.cancel(job_id)
    # CancelJob answers a finished job with its state; it may also have finished between the two calls.
    if before.state in FINISHED or job.state in (pb.JOB_STATE_COMPLETED, pb.JOB_STATE_FAILED):
        raise click.ClickException(
            f"job {job.id} had already finished ({_state(job.state)}); nothing to cancel"
        )
    click.echo(f"{job.id}: {_state(job.state)} (cancel requested)")


@jobs.command("dead-letters")
@server_option
def jobs_dead_letters(server: str) -> None:
    """List jobs given up on after too many attempts."""
    with connected(server) as client:
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
    with connected(server) as client:
        job = client.requeue(job_id)
    click.echo(f"requeued {job_id} as {job.id}")


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
