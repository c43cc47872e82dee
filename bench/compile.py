"""Compiled workers on the CPU: seconds from process start to ready, eager against ``--compile`` with an
empty compile cache (cold) and with the cache a first start left (warm), and the denoising time of a
job after each, in one run.

The tiny Wan2.1 pipeline (random weights); each start is a fresh process that loads the model as a
worker does (``load_pipeline``; with ``--compile``: compile, then warm up at the default size), then
runs one job at that size. On a GPU the same holds with real sizes; those rows are for ``bench/gpu.py``.

    python bench/compile.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: tests/harness/, which the fresh process is told where to find (sys.argv[3]).
TESTS = Path(__file__).resolve().parents[1] / "tests"
START = """
import json, sys, time
started = time.monotonic()
from pathlib import Path
from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.settings import Settings
sys.path.insert(0, sys.argv[3])
from harness.pipeline import request_for, run_direct

cache, compile_cache = Path(sys.argv[1]), sys.argv[2]
spec = BUILTIN_MODELS["tiny-wan2.1-t2v"]
settings = Settings.of(cache_dir=cache, compile=bool(compile_cache), compile_cache_dir=Path(compile_cache or "."))
pipeline = load_pipeline(spec, settings)
ready = time.monotonic() - started
run = run_direct(pipeline, request_for(spec, seed=5))
print(json.dumps({"ready": ready, "denoising": run.hooks.timings(0, 0).denoising}))
"""


def start(cache: Path, compile_cache: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", START, str(cache), compile_cache, str(TESTS)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    kinds = ("eager", "compile, cold cache", "compile, warm cache")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "models"
        start(cache, "")  # builds the tiny model once
        for run in range(args.runs):
            compile_cache = str(Path(scratch) / f"compile-{run}")
            results["eager"].append(start(cache, ""))
            results["compile, cold cache"].append(start(cache, compile_cache))
            results["compile, warm cache"].append(start(cache, compile_cache))
    eager = statistics.median(r["ready"] for r in results["eager"])
    print("| start | s to ready | vs eager | job denoising s |")
    print("|---|---|---|---|")
    for kind in kinds:
        ready = statistics.median(r["ready"] for r in results[kind])
        denoising = statistics.median(r["denoising"] for r in results[kind])
        print(f"| {kind} | {ready:.1f} | {ready / eager:.2f}x | {denoising:.3f} |")
    cold = statistics.median(r["ready"] for r in results["compile, cold cache"])
    warm = statistics.median(r["ready"] for r in results["compile, warm cache"])
    print(f"\nwarm start / cold start: {warm / cold:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
