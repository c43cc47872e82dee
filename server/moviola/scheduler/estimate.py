"""How long jobs run, and so how long a new one would wait: the start estimate both queues use.

Run times are kept per model and size class (the log2 of width × height ×
frames × steps, so a job twice the work is one class up), as an exponentially
weighted moving average. A class's first run is provisional, since it often
pays for warm-up (kernels, caches, allocator): the second run replaces it, and
averaging starts from there. A class never seen takes the model's nearest
known class, scaled by the work ratio.

A new job waits for what is ahead of it: the running jobs' remainders and the
waiting jobs' runs, shared among the live workers; a free worker and nothing
waiting means it starts at once.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from moviola.jobs import JobRequest

#: Weight of the newest run in the moving average.
ALPHA = 0.3


def work(request: JobRequest) -> float:
    """Pixels × frames × steps: what a run's time grows with."""
    return float(request.width * request.height * request.num_frames * max(1, request.num_inference_steps))


def size_class(request: JobRequest) -> int:
    return round(math.log2(max(1.0, work(request))))


@dataclass
class RunTime:
    """The moving average of one class's run seconds, and how many runs it has seen."""

    seconds: float
    runs: int = 1

    def observe(self, seconds: float) -> None:
        self.runs += 1
        self.seconds = seconds if self.runs == 2 else (1 - ALPHA) * self.seconds + ALPHA * seconds


def scaled(known: dict[int, float], cls: int) -> float | None:
    """Seconds for class ``cls`` from the nearest known class (each class up doubles the work)."""
    if not known:
        return None
    nearest = min(known, key=lambda c: (abs(c - cls), c))
    return known[nearest] * 2.0 ** (cls - nearest)


def wait(*, running: list[float], waiting: list[float], workers: int) -> float:
    """Seconds until a new job starts: ahead of it ``running`` remainders and ``waiting`` runs.

    Workers take the next job as soon as they are free, so the wait is when the job's turn comes
    on the first free worker (a list-scheduling simulation; queues are short, so this is cheap).
    """
    workers = max(1, workers)
    slots = sorted(max(0.0, r) for r in running)[:workers]
    slots += [0.0] * (workers - len(slots))
    heapq.heapify(slots)
    for seconds in waiting:
        heapq.heapreplace(slots, slots[0] + seconds)
    return slots[0]


class RunTimes:
    """Run times per model and size class, in this process (the memory queue's)."""

    def __init__(self) -> None:
        self._classes: dict[str, dict[int, RunTime]] = {}

    def observe(self, request: JobRequest, seconds: float) -> None:
        classes = self._classes.setdefault(request.model, {})
        cls = size_class(request)
        if cls in classes:
            classes[cls].observe(seconds)
        else:
            classes[cls] = RunTime(seconds)

    def expected(self, request: JobRequest) -> float | None:
        """Seconds a run of ``request`` is expected to take; None while its model has no run."""
        known = {c: r.seconds for c, r in self._classes.get(request.model, {}).items()}
        return scaled(known, size_class(request))
