"""Rendering a job's events: a live progress bar for people, JSON lines for scripts."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from moviola.v1 import job_pb2 as pb

PHASES = {
    pb.PHASE_TEXT_ENCODING: "encoding prompt",
    pb.PHASE_DENOISING: "denoising",
    pb.PHASE_VAE_DECODING: "decoding latents (VAE)",
    pb.PHASE_VIDEO_ENCODING: "encoding MP4",
    pb.PHASE_STORING: "storing",
}
EXPERTS = {
    pb.EXPERT_HIGH_NOISE: "high-noise expert",
    pb.EXPERT_LOW_NOISE: "low-noise expert",
    pb.EXPERT_SINGLE: "",
}


def _seconds(duration: object) -> float:
    return float(duration.ToNanoseconds()) / 1e9  # type: ignore[attr-defined]


def describe(event: pb.JobEvent) -> str:
    """One line for an event, as the progress bar and logs show it."""
    kind = event.WhichOneof("kind")
    if kind == "queued":
        return f"queued (position {event.queued.position})"
    if kind == "started":
        return f"started on {event.started.worker} (attempt {event.started.attempt})"
    if kind == "phase_changed":
        return PHASES.get(event.phase_changed.phase, "working")
    if kind == "progress":
        p = event.progress
        expert = EXPERTS.get(p.expert, "")
        return f"step {p.step}/{p.total_steps}" + (f", {expert}" if expert else "")
    if kind == "completed":
        return f"completed: {event.completed.video_uri}"
    if kind == "failed":
        return f"failed ({pb.FailureCode.Name(event.failed.code)}): {event.failed.message}"
    if kind == "cancelled":
        return f"cancelled: {event.cancelled.reason}"
    return kind or "unknown event"


def as_json(event: pb.JobEvent) -> str:
    return json_format.MessageToJson(event, indent=None)


def follow(
    events: Iterable[pb.JobEvent], console: Console, *, json_lines: bool = False
) -> pb.JobEvent | None:
    """Show events as they come; return the terminal one (None if the stream ended without it)."""
    if json_lines:
        last = None
        for event in events:
            print(as_json(event), flush=True)
            last = event
        return last
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[expert]:<18}"),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("submitting", total=None, expert="", eta="")
        for event in events:
            kind = event.WhichOneof("kind")
            if kind == "progress":
                p = event.progress
                bar.update(
                    task,
                    completed=p.step,
                    total=p.total_steps,
                    expert=EXPERTS.get(p.expert, ""),
                    eta=f"~{_seconds(p.remaining):.1f}s left",
                )
                if p.step == 1:
                    bar.update(task, description="denoising")
            else:
                bar.update(task, description=describe(event) if kind != "completed" else "done", eta="")
            if kind in ("completed", "failed", "cancelled"):
                return event
    return None
