"""What serving costs: the tiny Wan2.2 pipeline run directly vs. through ``Generate`` over gRPC.

(a) direct: in this process, pipeline plus MP4 encode written to a file;
(b) served: the same request through ``Generate`` on an embedded ``moviola serve``.
Runs alternate (a, b, a, b, ...) so that machine noise hits both alike. Prints
medians, the ratio b/a, and the time from sending the request to the QUEUED
event and to the first PROGRESS event.

    python bench/overhead.py [--runs 7] [--width 128 --height 128 --frames 17 --steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from moviola.catalog import TINY_WAN22_T2V
from moviola.client import Client
from moviola.jobs import Expert, JobRequest, Phase
from moviola.mp4 import encode_mp4
from moviola.pipelines.loader import load_pipeline
from moviola.settings import Settings
from moviola.testing import ServerProcess


class NoHooks:
    def phase(self, phase: Phase) -> None:
        pass

    def wants_preview(self, step: int, total_steps: int) -> bool:
        return False

    def step(
        self,
        step: int,
        total_steps: int,
        timestep: float,
        expert: Expert,
        preview: object = None,
        cached: bool = False,
        transformer_passes: int = 0,
    ) -> None:
        pass

    def peak_memory(self, peak_bytes: int) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="moviola-bench-"))
    settings = Settings.of(data_dir=work / "direct", cache_dir=work / "cache")
    pipeline = load_pipeline(TINY_WAN22_T2V, settings)
    d = TINY_WAN22_T2V.defaults
    request = JobRequest(
        model=TINY_WAN22_T2V.id,
        prompt="a red fox running through snow",
        negative_prompt="",
        image=None,
        width=args.width,
        height=args.height,
        num_frames=args.frames,
        fps=d.fps,
        num_inference_steps=args.steps,
        guidance_scale=d.guidance_scale,
        guidance_scale_2=d.guidance_scale_2,
        seed=1,
    )
    out = work / "direct.mp4"

    def direct() -> float:
        start = time.perf_counter()
        frames = pipeline.generate(request, NoHooks())
        out.write_bytes(encode_mp4(frames, request.fps))
        return time.perf_counter() - start

    direct()  # warm-up: first-call allocations and lazy imports
    served_args = ["--data-dir", str(work / "served"), "--cache-dir", str(work / "cache")]
    with ServerProcess(served_args) as server, Client(server.address) as client:

        def served() -> tuple[float, float, float]:
            start = time.perf_counter()
            first_event = first_progress = 0.0
            events = client.generate(
                request.prompt,
                width=args.width,
                height=args.height,
                num_frames=args.frames,
                num_inference_steps=args.steps,
                seed=1,
            )
            for event in events:
                now = time.perf_counter() - start
                kind = event.WhichOneof("kind")
                if not first_event:
                    first_event = now
                if kind == "progress" and not first_progress:
                    first_progress = now
                if kind in ("failed", "cancelled"):
                    raise RuntimeError(f"served run ended {kind}: {event}")
            return time.perf_counter() - start, first_event, first_progress

        served()  # warm-up
        a, b, queued, progress = [], [], [], []
        for _ in range(args.runs):
            a.append(direct())
            total, first_event, first_progress = served()
            b.append(total)
            queued.append(first_event)
            progress.append(first_progress)

    med_a, med_b = statistics.median(a), statistics.median(b)
    size = f"{args.width}x{args.height}, {args.frames} frames, {args.steps} steps"
    print(f"tiny-wan2.2-t2v at {size}, {args.runs} interleaved runs each")
    print(f"  (a) direct pipeline + MP4 : median {med_a * 1000:8.1f} ms  (min {min(a) * 1000:.1f})")
    print(f"  (b) Generate over gRPC    : median {med_b * 1000:8.1f} ms  (min {min(b) * 1000:.1f})")
    print(f"  ratio b/a                 : {med_b / med_a:.3f}   (target <= 1.05)")
    print(
        f"  request -> QUEUED event   : median {statistics.median(queued) * 1000:6.2f} ms  (target <= 10 ms)"
    )
    print(f"  request -> first PROGRESS : median {statistics.median(progress) * 1000:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
