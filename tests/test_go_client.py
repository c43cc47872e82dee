"""The Go module: committed stubs match a fresh generation; the example program runs against a live server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
GO_MODULE = "github.com/moviola/moviola/clients/go"


@pytest.fixture(scope="module")
def moviola_go(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build cmd/moviola-go offline: GOPATH mode over Debian's Go gRPC libraries (no module proxy)."""
    gopath = tmp_path_factory.mktemp("gopath")
    link = gopath / "src" / GO_MODULE
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT / "clients/go")
    binary = gopath / "moviola-go"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GOCACHE": str(gopath / "cache"),
    }
    subprocess.run(
        ["go", "build", "-o", str(binary), f"{GO_MODULE}/cmd/moviola-go"], cwd=gopath, env=env, check=True
    )
    return binary


def test_committed_go_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/gen_protos.py"),
            "--out",
            str(tmp_path / "py"),
            "--go-out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "moviolav1").glob("*.go")}
    committed = {p.name: p.read_bytes() for p in (ROOT / "clients/go/moviolav1").glob("*.go")}
    assert fresh == committed, "run `make proto` and commit the result"


def test_go_program_streams_a_generation(moviola_go: Path, server: ServerProcess) -> None:
    done = subprocess.run(
        [str(moviola_go), "-server", server.address, "-frames", "5", "-steps", "3", "generate", "a red fox"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "queued at position 1 (model tiny-wan2.2-t2v)" in lines[0]
    assert [line for line in lines if line.startswith("step ")] == [
        "step 1/3 EXPERT_HIGH_NOISE",
        "step 2/3 EXPERT_HIGH_NOISE",
        "step 3/3 EXPERT_LOW_NOISE",
    ]
    assert lines[-1].startswith("completed file://")
    assert Path(lines[-1].removeprefix("completed file://")).is_file()


def test_cancelled_context_cancels_the_job(moviola_go: Path, server: ServerProcess, client: Client) -> None:
    proc = subprocess.Popen(
        [
            str(moviola_go),
            "-server",
            server.address,
            "-frames",
            "9",
            "-steps",
            "50",
            "generate",
            "a long one",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    job_id = ""
    for line in proc.stdout:
        if line.startswith("job "):
            job_id = line.split()[1]
        if line.startswith("step "):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(60) == 130
    assert f"cancelled job {job_id} on the server" in rest
    events = list(client.watch(job_id))
    assert events[-1].HasField("cancelled")
    assert client.get(job_id).state == pb.JOB_STATE_CANCELLED
