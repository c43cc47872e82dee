"""Gateways and workers as real processes on a test's redis-server."""

from __future__ import annotations

import sys
from pathlib import Path

from moviola.testing import ServerProcess


def gateway(url: str, *extra: str) -> ServerProcess:
    """A gateway that queues jobs before any worker is up, as under scale-to-zero (tests start workers later)."""
    return ServerProcess(["--redis-url", url, "--accept-without-workers", *extra])


def worker(url: str, data_dir: Path, name: str, *extra: str, step_seconds: float = 0.02) -> ServerProcess:
    """A real worker process with the simulated pipeline (no torch: starts in a second)."""
    args = [
        "--redis-url",
        url,
        "--data-dir",
        str(data_dir),
        "--name",
        name,
        "--step-seconds",
        str(step_seconds),
    ]
    return ServerProcess(
        [*args, *extra], program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"], worker=True
    )
