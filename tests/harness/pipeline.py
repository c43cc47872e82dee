"""Running a loaded pipeline directly, as the worker does, for tests and benchmarks.

``request_for`` is a complete request with the model's defaults (what validation would make
of a bare prompt), and ``run_direct`` runs it through the worker's own ``JobHooks``, keeping the
events they emit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moviola.catalog import ModelSpec
from moviola.jobs import EventKind, JobRequest, Progress
from moviola.pipelines.base import Frames, VideoPipeline
from moviola.pipelines.compiled import default_request
from moviola.worker.hooks import JobHooks


def request_for(spec: ModelSpec, **changes: Any) -> JobRequest:
    """A request for ``spec`` with its defaults, prompt "a fox" and seed 1, then ``changes``."""
    return default_request(spec, **changes)


@dataclass
class Run:
    frames: Frames
    events: list[EventKind]
    hooks: JobHooks

    @property
    def progress(self) -> list[Progress]:
        return [e for e in self.events if isinstance(e, Progress)]


def run_direct(pipeline: VideoPipeline, request: JobRequest) -> Run:
    """Generate ``request`` on ``pipeline`` with the worker's hooks (``preview_every`` from the request)."""
    events: list[EventKind] = []
    hooks = JobHooks(events.append, preview_every=request.preview_every)
    frames = pipeline.generate(request, hooks)
    return Run(frames, events, hooks)
