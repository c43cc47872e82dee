"""``bench/gpu.py`` at a toy size on the CPU (``--smoke``): the same code that runs on a GPU, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench" / "gpu.py"


def _table(*args: str) -> list[list[str]]:
    """The rows of every table the benchmark prints, without headers."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--steps", "1", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=400,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("GPU: CPU (smoke")
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines[3:]
        if line.startswith("|") and not line.startswith(("|---", "| model |", "| video ("))
    ]


@pytest.mark.timeout(420)
def test_the_gpu_benchmark_runs_every_variant_at_a_toy_size() -> None:
    rows = _table("--models", "wan2.1-t2v-1.3b", "--cost-models", "wan2.1-t2v-1.3b")
    videos = [row for row in rows if row[0] in ("wan2.2-t2v-a14b", "wan2.2-ti2v-5b")]
    rows = rows[: len(rows) - len(videos)]
    assert [row[:2] for row in videos] == [
        ["wan2.2-t2v-a14b", "exact (40 steps, from 4 measured)"],
        ["wan2.2-t2v-a14b", "turbo"],
        ["wan2.2-t2v-a14b", "turbo+fp8"],
        ["wan2.2-ti2v-5b", "exact (50 steps, from 4 measured)"],
    ]
    passes = {row[1]: int(row[4]) for row in videos if row[0] == "wan2.2-t2v-a14b"}
    assert passes == {"exact (40 steps, from 4 measured)": 80, "turbo": 4, "turbo+fp8": 4}
    assert all(float(row[2]) >= float(row[3]) > 0 for row in videos)  # a whole video includes its denoising
    adapter = rows.pop()
    assert adapter[:2] == ["wan2.1-t2v-1.3b", "4"]
    assert all(float(seconds) >= 0 for seconds in adapter[2:])  # load, switch, unload were timed
    assert [row[1] for row in rows] == [
        "plain",
        "attention",
        "compile",
        "exact",
        "fast",
        "int8",
        "fp8",
        "turbo",
        "turbo+fp8+compile",
    ]
    by_variant = {row[1]: row for row in rows}
    assert by_variant["plain"][3] == "1.00x"
    assert by_variant["attention"][6] == "no faster backend installed"  # none on a CPU: said, not faked
    for variant in ("plain", "compile", "exact", "fast"):
        assert float(by_variant[variant][2]) > 0
    assert "compiled" in by_variant["compile"][6]
    assert by_variant["fast"][5].endswith("/1")  # the cached steps are shown
    assert by_variant["fp8"][6] == "fp8 weight-only"  # no float8 matmuls on a CPU: said, not faked
    assert by_variant["turbo+fp8+compile"][6].startswith("fp8 weight-only compiled")
    assert float(by_variant["turbo"][7]) > 0 and by_variant["turbo"][8].endswith("x")  # noqa: PT018


@pytest.mark.timeout(300)
def test_the_gpu_benchmark_builds_every_published_transformer() -> None:
    rows = _table(
        "--models",
        "wan2.2-ti2v-5b",
        "wan2.2-a14b-expert",
        "--variants",
        "plain",
        "--cost-models",
        "--no-videos",
    )
    assert [(row[0], row[1]) for row in rows] == [
        ("wan2.2-ti2v-5b", "plain"),
        ("wan2.2-a14b-expert", "plain"),
    ]
