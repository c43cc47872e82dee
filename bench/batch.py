"""Batched jobs on the CPU: throughput at batch sizes 1, 2 and 4, the same run, alternating.

The tiny Wan2.1 and Wan2.2 T2V pipelines (random weights) at 128x128, 17 frames, 10 steps. Each
round runs 4 jobs of one batch key: one at a time (B = 1), two batches of 2, one batch of 4
(what ``--max-batch`` makes of a queue of 4). Reported: jobs per second of each and its ratio
to B = 1. Batching pays where one job leaves the device idle between kernels; a 2-core CPU is
busy already, so these ratios say what the batching machinery costs, not what a GPU gains.

    python bench/batch.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from moviola.catalog import BUILTIN_MODELS
from moviola.jobs import JobRequest
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings
from moviola.worker.hooks import JobHooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.pipeline import request_for

JOBS = 4
SIZES = (1, 2, 4)


def jobs_per_second(pipeline: DiffusersVideo, requests: list[JobRequest], size: int) -> float:
    started = time.perf_counter()
    for first in range(0, len(requests), size):
        members = requests[first : first + size]
        hooks = [JobHooks(lambda _e: None) for _ in members]
        if size == 1:
            pipeline.generate(members[0], hooks[0])
        else:
            pipeline.generate_batch(members, list(hooks))
    return len(requests) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| model | " + " | ".join(f"B={b} jobs/s" for b in SIZES) + " | B=2 / B=1 | B=4 / B=1 |")
    print("|---|" + "---|" * (len(SIZES) + 2))
    with tempfile.TemporaryDirectory() as cache:
        for model in ("tiny-wan2.1-t2v", "tiny-wan2.2-t2v"):
            pipeline = load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=Path(cache)))
            assert isinstance(pipeline, DiffusersVideo)
            spec = pipeline.spec
            requests = [
                request_for(spec, width=128, height=128, num_frames=17, num_inference_steps=10, seed=s)
                for s in range(JOBS)
            ]
            jobs_per_second(pipeline, requests[:2], 2)  # warm up
            rates: dict[int, list[float]] = {b: [] for b in SIZES}
            for _ in range(args.runs):
                for size in SIZES:
                    rates[size].append(jobs_per_second(pipeline, requests, size))
            median = {b: statistics.median(r) for b, r in rates.items()}
            cells = " | ".join(f"{median[b]:.2f}" for b in SIZES)
            print(f"| {model} | {cells} | {median[2] / median[1]:.2f} | {median[4] / median[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
