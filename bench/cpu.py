"""CPU time per process over a phase of a benchmark, from /proc (Linux), to show where the time goes.

meter = CpuMeter({"gateway": gw_pid, "redis": redis_pid})  # the caller (this process) is added
meter.start(); ...; meter.stop()
meter.per_job(jobs)  # {"caller": 0.9, "gateway": 1.5, "redis": 0.4} in ms
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (0.0 where /proc is not there)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = dict(pids)
        self._start: dict[str, float] = {}
        self._used: dict[str, float] = {}

    def add(self, pids: dict[str, int]) -> None:
        self._pids |= pids

    def _now(self) -> dict[str, float]:
        return {"caller": time.process_time()} | {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> None:
        self._used = {name: value - self._start[name] for name, value in self._now().items()}

    def per_job(self, jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job, by process, and their total."""
        used = {name: seconds * 1000 / jobs for name, seconds in self._used.items()}
        return used | {"total": sum(used.values())}
