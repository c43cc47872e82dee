"""Cost per video by speed profile and quantization, on the CPU: transformer passes and seconds.

The tiny Wan2.2-T2V-A14B twin (two experts, the real pipeline) at Wan2.2-A14B's step defaults: exact
and fast run the catalogue's 40 steps with guidance (two passes a step), turbo its 4 without (one).
Passes are counted by the worker's own step counter (``transformer_passes`` in results); seconds are
the whole video (text encoding to frames). Ratios are against exact, no quantization, in the same run.

    python bench/cost.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.pipeline import request_for, run_direct

MODEL = "tiny-wan2.2-t2v"
REAL = BUILTIN_MODELS["wan2.2-t2v-a14b"]


def main() -> int:
    spec = BUILTIN_MODELS[MODEL]
    steps = REAL.defaults.num_inference_steps
    profiles: dict[str, dict[str, Any]] = {
        "exact": {"num_inference_steps": steps},
        "fast": {"num_inference_steps": steps, "speed_profile": "fast"},
        "turbo": {
            "speed_profile": "turbo",
            "num_inference_steps": 4,
            "guidance_scale": 1.0,
            "guidance_scale_2": 1.0,
        },
    }
    print(f"CPU, {MODEL} (two experts), 64x64, 9 frames; exact/fast: {steps} steps with guidance")
    print("| profile | quantize | passes/video | vs exact | s/video | vs exact |")
    print("|---|---|---|---|---|---|")
    baseline: tuple[int, float] | None = None
    with tempfile.TemporaryDirectory() as scratch:
        for quantize in ("none", "int8", "fp8"):
            pipeline = load_pipeline(spec, Settings.of(cache_dir=Path(scratch), quantize=quantize))
            assert isinstance(pipeline, DiffusersVideo)
            for profile, changes in profiles.items():
                request = request_for(spec, width=64, height=64, num_frames=9, seed=1, **changes)
                run_direct(pipeline, request)  # warm-up: adapters loaded, allocator settled
                started = time.perf_counter()
                run = run_direct(pipeline, request)
                seconds = time.perf_counter() - started
                passes = run.hooks.transformer_passes
                baseline = baseline or (passes, seconds)
                print(
                    f"| {profile} | {quantize} | {passes} | {passes / baseline[0]:.3f} | {seconds:.2f} "
                    f"| {baseline[1] / seconds:.2f}x |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
