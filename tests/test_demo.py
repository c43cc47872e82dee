"""The README's first command, ``make demo``, run as a user runs it (the install step is already done)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_make_demo_generates_embeds_and_finds_the_clip() -> None:
    done = subprocess.run(
        ["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=590, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tiny-siglip2: a 32-dimensional vector from 8 frames" in done.stdout
    assert "matched its prompt" in done.stdout
    video = ROOT / ".demo" / "fox.mp4"
    assert f"your video: {video}" in done.stdout
    assert video.stat().st_size > 0
