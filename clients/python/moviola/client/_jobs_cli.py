"""``moviola jobs``: list, get, watch, download, cancel, dead letters, requeue."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from moviola.client._cli_shared import (
    FINISHED,
    _finish,
    _state,
    _wait_ready,
    server_option,
    stderr,
    wait_ready_option,
)
from moviola.client._connect import connected
from moviola.client.progress import follow
from moviola.v1 import job_pb2 as pb


@click.group()
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
@click.option(
    "--spritesheet", is_flag=True, help="A JPEG grid of up to 25 evenly spaced frames instead of the video."
)
def jobs_download(job_id: str, server: str, out: Path, thumbnail: bool, spritesheet: bool) -> None:
    """Save a completed job's video (or poster, or spritesheet) to OUT, from any server and any storage."""
    if thumbnail and spritesheet:
        raise click.UsageError("--thumbnail and --spritesheet: choose one")
    with connected(server) as client:
        size = client.download_to(job_id, out, thumbnail=thumbnail, spritesheet=spritesheet)
    stderr.print(Text(f"{out}: {size} bytes"))


@jobs.command("extend")
@click.argument("job_id")
@server_option
@click.option("--prompt", required=True, help="What the added seconds show.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), required=True, help="Seconds to add.")
def jobs_extend(job_id: str, server: str, prompt: str, seconds: float) -> None:
    """Continue a completed video by SECONDS, as a new job (`moviola jobs watch` follows it)."""
    with connected(server) as client:
        job = client.extend(job_id, prompt, seconds)
    click.echo(f"extending {job_id} as {job.id}")


@jobs.command("edit")
@click.argument("job_id")
@server_option
@click.option("--prompt", required=True, help="What the edited video shows.")
@click.option(
    "--strength",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=None,
    help="How far from the video, 0 < s <= 1: the share of the steps run (default: the server's, 0.7).",
)
def jobs_edit(job_id: str, server: str, prompt: str, strength: float | None) -> None:
    """Make a completed video again from a new prompt (video-to-video), as a new job."""
    with connected(server) as client:
        job = client.edit(job_id, prompt, strength=strength)
    click.echo(f"editing {job_id} as {job.id}")


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
