"""The contract: committed stubs equal a fresh generation; buf lint and format are clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generator = [sys.executable, str(ROOT / "scripts/gen_protos.py"), "--python-only", "--out", str(tmp_path)]
    subprocess.run(generator, check=True)
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "moviola/v1").iterdir()}
    committed_dir = ROOT / "clients/python/moviola/v1"
    committed = {
        p.relative_to(ROOT / "clients/python"): p.read_bytes() for p in committed_dir.iterdir() if p.is_file()
    }
    assert sorted(fresh) == sorted(committed), "run `make proto` and commit the result"
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stubs out of date, run `make proto`: {stale}"


def test_buf_lint_and_format_are_clean() -> None:
    buf = shutil.which("buf", path=str(BIN)) or "buf"
    lint = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [buf, "format", "-d", "--exit-code"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_domain_code_never_imports_grpc() -> None:
    allowed = {
        "api",
        "rest",
        "runtime",
        "testing.py",
    }  # the gRPC layer and the composition roots that build it
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "server/moviola").rglob("*.py")
        if path.relative_to(ROOT / "server/moviola").parts[0] not in allowed
        and any(line.startswith(("import grpc", "from grpc")) for line in path.read_text().splitlines())
    ]
    assert offenders == []


def test_a_gateway_does_not_import_torch() -> None:
    """Stateless gateways run on CPU pods: torch, transformers and diffusers stay out of them."""
    code = "import sys, moviola.runtime.gateway; print(sorted({'torch', 'transformers', 'diffusers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
