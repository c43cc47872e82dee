"""Speed profiles on the CPU: ``fast`` (First Block Cache) against ``exact``, the same run, alternating.

The tiny Wan2.1 and Wan2.2 T2V pipelines (random weights) at 128x128, 17 frames, 20 steps:
denoising seconds per job for each profile, their ratio, the steps the cache served, and the
PSNR of the fast video against the exact one (same seed). Tiny random weights say how much
work is skipped, not how a real model looks: the real thresholds' quality is for `bench/gpu.py`.

    python bench/speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.pipeline import request_for, run_direct

STEPS = 20


def run(pipeline: DiffusersVideo, profile: str) -> tuple[float, int, np.ndarray]:
    request = request_for(
        pipeline.spec,
        width=128,
        height=128,
        num_frames=17,
        num_inference_steps=STEPS,
        seed=7,
        speed_profile=profile,
    )
    done = run_direct(pipeline, request)
    return done.hooks.timings(0, 0).denoising, done.hooks.cached_steps, done.frames


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| model | exact s/job | fast s/job | fast/exact | cached steps | PSNR fast vs exact |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        for model in ("tiny-wan2.1-t2v", "tiny-wan2.2-t2v"):
            pipeline = load_pipeline(BUILTIN_MODELS[model], Settings.of(cache_dir=Path(cache)))
            assert isinstance(pipeline, DiffusersVideo)
            run(pipeline, "exact")  # warm up
            exact, fast = [], []
            for _ in range(args.runs):
                seconds, _, exact_frames = run(pipeline, "exact")
                exact.append(seconds)
                seconds, cached, fast_frames = run(pipeline, "fast")
                fast.append(seconds)
            mse = float(np.mean((exact_frames.astype(np.float64) - fast_frames.astype(np.float64)) ** 2))
            psnr = 10 * np.log10(255.0**2 / mse) if mse else float("inf")
            e, f = statistics.median(exact), statistics.median(fast)
            print(f"| {model} | {e:.3f} | {f:.3f} | {f / e:.2f} | {cached}/{STEPS} | {psnr:.1f} dB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
