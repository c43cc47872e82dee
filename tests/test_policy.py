"""The policy scanner a reviewer runs, run here: `make policy` (checkov on both rendered overlays and the
Dockerfiles) passes every check, and a check is only ever skipped with a reason written beside the skip.

The first run creates checkov's own venv (.venv-checkov, about 40 s); later runs only scan (about 20 s).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from manifests import OVERLAYS, ROOT, render

#: A skip: ``checkov.io/skipN: CKV_K8S_N=why`` on an object, ``# checkov:skip=CKV_DOCKER_N: why`` in a Dockerfile.
REASONED = re.compile(r"CKV2?_[A-Z0-9]+_\d+\s*[=:]\s*\S.{8,}")


@pytest.mark.timeout(600)
def test_make_policy_passes_every_check(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make, "make is needed"
    ran = subprocess.run(
        [make, "-s", "policy", f"POLICY_DIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    results = re.findall(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", ran.stdout)
    assert len(results) == 3, ran.stdout  # dev, prod, the Dockerfiles
    assert all(int(passed) > 100 and failed == "0" for passed, failed, _ in results), results
    assert {p.name for p in tmp_path.iterdir()} == {f"{overlay}.yaml" for overlay in OVERLAYS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_skipped_check_says_why(overlay: str) -> None:
    for obj in render(overlay):
        pods = obj.get("spec", {}).get("template", {}).get("metadata", {})
        for metadata in (obj["metadata"], pods):
            for name, value in metadata.get("annotations", {}).items():
                if name.startswith("checkov.io/skip"):
                    assert REASONED.fullmatch(value), f"{obj['metadata']['name']}: {value}"
    for dockerfile in (ROOT / "deploy" / "docker").glob("*.Dockerfile"):
        for skip in re.findall(r"checkov:skip=(.*)", dockerfile.read_text()):
            assert REASONED.fullmatch(skip), f"{dockerfile.name}: {skip}"
