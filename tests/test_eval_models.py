"""``moviola eval models`` end to end on a real server: real jobs, real Embed, every output, resumable."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from moviola.client.cli import main
from moviola.eval.prompts import PROMPTS
from moviola.testing import ServerProcess

SMALL = ["--width", "64", "--height", "64", "--frames", "9", "--steps", "2"]


def _run(server: ServerProcess, out: Path, *extra: str) -> str:
    args = ["eval", "models", "--server", server.address, "--out", str(out), *SMALL, *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.timeout(240)
def test_models_are_compared_on_the_same_prompts_and_a_rerun_skips_finished_cells(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    printed = _run(server, out, "--prompts", "2", "--model", "tiny-wan2.2-t2v", "--model", "tiny-ltx-video")
    with (out / "models.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(r["model"], r["prompt_id"]) for r in rows] == [
        (m, p) for m in ("tiny-wan2.2-t2v", "tiny-ltx-video") for p in list(PROMPTS)[:2]
    ]
    for row in rows:
        assert int(row["steps"]) == 2
        assert float(row["seconds_per_step"]) > 0
        assert float(row["total_seconds"]) >= float(row["seconds_per_step"]) * 2
        assert float(row["peak_memory_gib"]) > 0
        assert -1.0 <= float(row["text_video_similarity"]) <= 1.0
        assert -1.0 <= float(row["temporal_consistency"]) <= 1.0
        assert float(row["motion"]) > 0  # random-weight videos are noise: they change frame to frame
        assert (out / row["video"]).stat().st_size > 0
    table = (out / "models.md").read_text()
    assert "| tiny-wan2.2-t2v | 2 |" in table
    assert "| tiny-ltx-video | 2 |" in table
    assert "tiny-wan2.2-t2v" in printed
    with Image.open(out / "contact-sheet.png") as sheet:
        assert sheet.size == (2 * 128, 2 * 128)  # a column per model, a row per prompt
    with Image.open(out / "models.png") as plot:
        assert plot.width > 100

    first_jobs = [r["job_id"] for r in rows]
    _run(server, out, "--prompts", "3", "--model", "tiny-wan2.2-t2v", "--model", "tiny-ltx-video")
    cells = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [c["job_id"] for c in cells][:4] == first_jobs  # the finished cells were not run again ...
    assert len(cells) == 6  # ... only the third prompt, for each model


def test_a_model_not_served_is_refused_with_what_is(server: ServerProcess, tmp_path: Path) -> None:
    args = ["eval", "models", "--server", server.address, "--out", str(tmp_path), "--model", "nope"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "not served here: nope (served: tiny-" in result.output
