"""What the ``moviola`` commands share: connection and readiness options, bounds, following a job to its end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from moviola.client._connect import connection_options
from moviola.client._sync import Client
from moviola.client.progress import describe, follow, waiting_for_server
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


def save_previews(events: Iterator[pb.JobEvent], folder: Path) -> Iterator[pb.JobEvent]:
    """Pass ``events`` through, writing each progress preview to ``folder/step-NNNN.jpg``."""
    suffixes = {"image/jpeg": ".jpg", "image/webp": ".webp", "image/png": ".png"}
    for event in events:
        if event.WhichOneof("kind") == "progress" and event.progress.HasField("preview"):
            preview = event.progress.preview
            name = f"step-{event.progress.step:04d}{suffixes.get(preview.mime_type, '.img')}"
            (folder / name).write_bytes(preview.image)
        yield event


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
