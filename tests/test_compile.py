"""``--compile`` on a real tiny pipeline, in fresh processes: it matches eager, the fast profile still
counts its cached steps, and a second process loads the compiled kernels from the cache folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct

from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.settings import Settings

MODEL = "tiny-wan2.1-t2v"
TESTS = Path(__file__).resolve().parent

# Loads the model as a worker with --compile does (compile, warm up), then runs one job per profile
# at the model's default size (what the warm-up compiled for) and reports what Inductor did.
PROBE = """
import json, sys
from pathlib import Path
import numpy as np
from torch._dynamo.utils import counters
from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.settings import Settings
sys.path.insert(0, sys.argv[5])  # tests/, for the harness
from harness.pipeline import request_for, run_direct

cache, compile_cache, out = (Path(arg) for arg in sys.argv[1:4])
spec = BUILTIN_MODELS[sys.argv[4]]
pipeline = load_pipeline(spec, Settings.of(cache_dir=cache, compile=True, compile_cache_dir=compile_cache))
loaded = dict(counters["inductor"])
cached = {}
for profile in ("exact", "fast"):
    run = run_direct(pipeline, request_for(spec, seed=3, speed_profile=profile))
    np.save(out / f"{profile}.npy", run.frames)
    cached[profile] = run.hooks.cached_steps
json.dump({"at_load": loaded, "after_jobs": dict(counters["inductor"]), "cached": cached}, (out / "report.json").open("w"))
"""


def _probe(cache_dir: Path, compile_cache: Path, out: Path) -> dict[str, dict[str, int]]:
    out.mkdir()
    subprocess.run(
        [sys.executable, "-c", PROBE, str(cache_dir), str(compile_cache), str(out), MODEL, str(TESTS)],
        check=True,
        timeout=280,
    )
    report: dict[str, dict[str, int]] = json.loads((out / "report.json").read_text())
    return report


@pytest.mark.timeout(600)
def test_a_compiled_worker_matches_eager_and_a_restarted_one_reuses_its_kernels(
    cache_dir: Path, tmp_path: Path
) -> None:
    spec = BUILTIN_MODELS[MODEL]
    eager = load_pipeline(spec, Settings.of(cache_dir=cache_dir))
    expected = {p: run_direct(eager, request_for(spec, seed=3, speed_profile=p)) for p in ("exact", "fast")}
    compile_cache = tmp_path / "compile"

    cold = _probe(cache_dir, compile_cache, tmp_path / "cold")
    assert cold["at_load"].get("fxgraph_cache_miss", 0) > 0  # compiled at load, before any job
    assert (
        cold["after_jobs"].get("fxgraph_cache_miss") == cold["at_load"]["fxgraph_cache_miss"]
    )  # no job compiled
    assert any(compile_cache.rglob("*")), "nothing was kept in the compile cache folder"
    for profile, run in expected.items():
        frames = np.load(tmp_path / "cold" / f"{profile}.npy")
        # Inductor fuses float32 kernels in another order: within one level of 255 of eager.
        assert int(np.abs(frames.astype(np.int16) - run.frames.astype(np.int16)).max()) <= 1
    assert cold["cached"]["exact"] == 0
    assert cold["cached"]["fast"] == expected["fast"].hooks.cached_steps > 0  # still counted when compiled

    warm = _probe(cache_dir, compile_cache, tmp_path / "warm")
    assert warm["at_load"].get("fxgraph_cache_hit", 0) > 0  # the restarted process loaded the kernels...
    assert warm["at_load"].get("fxgraph_cache_miss", 0) == 0  # ... and compiled nothing itself
    np.testing.assert_array_equal(
        np.load(tmp_path / "warm" / "exact.npy"), np.load(tmp_path / "cold" / "exact.npy")
    )
