"""Rendering a job's events: a live bar on a terminal, one line per stage elsewhere, JSON lines for scripts.

Nothing is shown before the first event (a request the server refuses shows only the refusal). The
display names the phase the job is in (encoding prompt, denoising, decoding latents (VAE), encoding
MP4, storing) and keeps its spinner going until the job ends; it counts steps once the first one
says how many there are; a job run again after its worker was lost says which attempt it is on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from google.protobuf import json_format
from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, Task, TaskID, TextColumn
from rich.status import Status
from rich.text import Text

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
TERMINAL = ("completed", "failed", "cancelled")


def _seconds(duration: object) -> float:
    return float(duration.ToNanoseconds()) / 1e9  # type: ignore[attr-defined]


def describe(event: pb.JobEvent) -> str:
    """One line for an event, as the progress display and logs show it."""
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
        segment = f"segment {p.segment}/{p.total_segments}, " if p.total_segments > 1 else ""
        return f"{segment}step {p.step}/{p.total_steps}" + (f", {expert}" if expert else "")
    if kind == "completed":
        return f"completed: {event.completed.video_uri}"
    if kind == "failed":
        return f"failed ({pb.FailureCode.Name(event.failed.code)}): {event.failed.message}"
    if kind == "cancelled":
        return f"cancelled: {event.cancelled.reason}"
    return kind or "unknown event"


def as_json(event: pb.JobEvent) -> str:
    return json_format.MessageToJson(event, indent=None)


@dataclass
class JobView:
    """What the display shows of one job, folded from its events."""

    doing: str = ""
    attempt: int = 1
    step: int = 0
    total: int | None = None
    expert: str = ""
    eta: str = ""
    ended: bool = False

    def apply(self, event: pb.JobEvent) -> None:
        kind = event.WhichOneof("kind")
        self.ended = kind in TERMINAL
        self.eta = ""
        if kind == "started":  # a first run, or a new one after a lost worker: steps start over
            self.attempt = event.started.attempt or 1
            self.step, self.total, self.expert = 0, None, ""
        if kind == "progress":
            p = event.progress
            self.step, self.total = p.step, p.total_steps or None
            self.expert = EXPERTS.get(p.expert, "")
            self.eta = f"~{_seconds(p.remaining):.1f}s left"
            self.doing = f"segment {p.segment}/{p.total_segments}" if p.total_segments > 1 else "denoising"
        else:
            self.doing = "done" if kind == "completed" else describe(event)

    @property
    def description(self) -> str:
        again = self.attempt > 1 and "attempt" not in self.doing
        return self.doing + (f" (attempt {self.attempt})" if again else "")

    @property
    def steps(self) -> str:
        return f"{self.step}/{self.total} steps" if self.total else ""


def _worth_a_line(event: pb.JobEvent) -> bool:
    """Off a terminal: every event but progress, and steps at the first, the last and each tenth."""
    if event.WhichOneof("kind") != "progress":
        return True
    step, total = event.progress.step, max(1, event.progress.total_steps)
    return step in (1, total) or step * 10 // total != (step - 1) * 10 // total


class _Spinner(SpinnerColumn):
    """Spins until the job ends, not until the bar is full: decoding and storing come after the last step."""

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("ended"):
            return self.finished_text
        return self.spinner.render(task.get_time())


def _lines(events: Iterable[pb.JobEvent], console: Console) -> pb.JobEvent | None:
    view = JobView()
    for event in events:
        view.apply(event)
        if _worth_a_line(event):
            line = describe(event) if event.WhichOneof("kind") == "progress" else view.description
            console.print(line + (f"  {view.eta}" if view.eta else ""), markup=False, highlight=False)
        if view.ended:
            return event
    return None


def _bar(events: Iterable[pb.JobEvent], console: Console) -> pb.JobEvent | None:
    columns = (
        _Spinner(),
        TextColumn("{task.description:<34}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[steps]}", markup=False),
        TextColumn("{task.fields[expert]:<18}", markup=False),
        TextColumn("{task.fields[eta]}", markup=False),
    )
    view = JobView()
    bar: Progress | None = None
    task = TaskID(0)
    try:
        for event in events:
            view.apply(event)
            if bar is None:  # started by the first event: nothing shows while the request is checked
                bar = Progress(*columns, console=console, transient=False)
                bar.start()
                task = bar.add_task("", total=None, steps="", expert="", eta="", ended=False)
            bar.update(
                task,
                description=view.description,
                completed=view.step,
                total=view.total,
                steps=view.steps,
                expert=view.expert,
                eta=view.eta,
                ended=view.ended,
                refresh=True,
            )
            if view.ended:
                return event
    finally:
        if bar is not None:
            bar.stop()
    return None


def follow(
    events: Iterable[pb.JobEvent], console: Console, *, json_lines: bool = False
) -> pb.JobEvent | None:
    """Show events as they come; return the terminal one (None if the stream ended without it).

    A bar on an interactive terminal, one line per stage otherwise (logs, CI), JSON lines when asked.
    """
    if json_lines:
        for event in events:
            print(as_json(event), flush=True)
            if event.WhichOneof("kind") in TERMINAL:
                return event
        return None
    return _bar(events, console) if console.is_interactive else _lines(events, console)


@contextmanager
def waiting_for_server(console: Console) -> Iterator[Callable[[str], None]]:
    """A ``waiting`` callback for ``Client.wait_ready``: a spinner with the reason on a terminal, a line
    per new reason elsewhere. Nothing shows when the server is ready at once.

        with waiting_for_server(console) as waiting:
            client.wait_ready(120, waiting=waiting)
    """
    status: Status | None = None
    said = ""

    def waiting(reason: str) -> None:
        nonlocal status, said
        if reason == said:
            return
        said = reason
        text = Text(f"waiting for the server: {reason}")
        if not console.is_interactive:
            console.print(text)
        elif status is None:
            status = console.status(text)
            status.start()
        else:
            status.update(text)

    try:
        yield waiting
    finally:
        if status is not None:
            status.stop()
