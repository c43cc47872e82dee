"""The Go module: committed stubs match a fresh generation; the example program runs against a live server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from moviola.auth import keys
from moviola.client import Client
from moviola.mp4 import encode_mp4
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
GO_BINARY = ROOT / "clients/go/bin/moviola-go"
#: Of the session server's models: the default cannot edit; one continues videos; the one that edits.
TEXT_ONLY, CONTINUES, EDITS = "tiny-wan2.2-t2v", "tiny-wan2.2-ti2v", "tiny-wan2.1-t2v"


def readme_go_block() -> str:
    """The README's sh block that runs the Go example, verbatim."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    found = [block for block in blocks if "go run ./cmd/moviola-go" in block]
    assert len(found) == 1, "README.md should have one sh block with the Go example's `go run`"
    return str(found[0])


def fresh_clone(into: Path) -> Path:
    """The work tree as a clone gets it: tracked and unignored files only (no vendor/, bin/, go.sum)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    for name in listed.stdout.split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.fixture(scope="module")
def moviola_go() -> Path:
    """`make go`: the module's dependencies vendored offline from Debian's packages, and the program built."""
    done = subprocess.run(["make", "-s", "go"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return GO_BINARY


def test_readme_go_command_runs_as_written(server: ServerProcess, tmp_path: Path) -> None:
    """Exactly the README's commands, in a fresh copy of the tree: no GOPATH, no module proxy, no go.sum."""
    block = readme_go_block()
    assert block.startswith("make go\n"), block
    clone = fresh_clone(tmp_path)
    assert not (clone / "clients/go/go.sum").exists()
    assert not (clone / "clients/go/vendor").exists()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=clone,
        # GOPROXY=off: as on a machine without the module proxy, failing at once instead of timing out.
        env={**os.environ, "MOVIOLA_SERVER": server.address, "GOPROXY": "off"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("job ") and "queued at position" in line for line in lines), lines
    assert lines[-1].startswith("completed file://"), lines
    assert Path(lines[-1].removeprefix("completed file://")).is_file()


def test_vendor_tree_is_what_go_mod_requires(moviola_go: Path) -> None:
    """vendor/modules.txt marks every go.mod requirement explicit, at go.mod's version."""
    go_mod = (ROOT / "clients/go/go.mod").read_text()
    required = re.findall(r"^\t(\S+) (v\S+)", go_mod, re.MULTILINE)
    modules_txt = (ROOT / "clients/go/vendor/modules.txt").read_text()
    vendored = re.findall(r"^# (\S+) (\S+)\n## explicit", modules_txt, re.MULTILINE)
    assert sorted(required) == sorted(vendored)
    assert not list((ROOT / "clients/go/vendor").rglob("*_test.go"))


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


def test_go_program_saves_the_video_poster_and_spritesheet_through_download_video(
    moviola_go: Path, server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "fox.mp4"
    args = [str(moviola_go), "-server", server.address, "-frames", "5", "-steps", "2", "-out", str(out)]
    done = subprocess.run([*args, "generate", "a red fox"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stored = Path(lines[-2].removeprefix("completed file://"))
    assert lines[-1] == f"saved {out} ({stored.stat().st_size} bytes)"
    assert out.read_bytes() == stored.read_bytes()
    job_id = stored.stem
    poster = tmp_path / "poster.jpg"
    download = [str(moviola_go), "-server", server.address, "-out", str(poster), "-thumbnail"]
    done = subprocess.run([*download, "download", job_id], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert poster.read_bytes() == stored.with_suffix(".jpg").read_bytes()
    sheet = tmp_path / "sheet.jpg"
    grid = [
        str(moviola_go),
        "-server",
        server.address,
        "-out",
        str(sheet),
        "-spritesheet",
        "download",
        job_id,
    ]
    done = subprocess.run(grid, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sheet.read_bytes() == stored.with_suffix(".spritesheet.jpg").read_bytes()
    missing = subprocess.run([*download, "download", "0" * 32], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert "NotFound" in missing.stderr
    assert not (tmp_path / "poster.jpg.part").exists()


def test_go_program_names_lora_adapters(moviola_go: Path, server: ServerProcess) -> None:
    """-lora NAME[:SCALE] reaches the server: this one registers none, so it names the field and says so."""
    args = [str(moviola_go), "-server", server.address, "-frames", "5", "-steps", "2"]
    done = subprocess.run(
        [*args, "-lora", "ink-wash:0.5", "generate", "a red fox"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "InvalidArgument" in done.stderr
    assert "loras[0].name: unknown adapter 'ink-wash'; model tiny-wan2.2-t2v serves: none" in done.stderr
    bad = subprocess.run(
        [*args, "-lora", "ink:lots", "generate", "x"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "want NAME or NAME:SCALE" in bad.stderr


def _finished(client: Client, model: str, frames: int, steps: int = 1) -> str:
    """A completed 64x64 job of ``model``: the source of an extension or an edit."""
    events = list(
        client.generate(
            "a fox", model=model, num_frames=frames, num_inference_steps=steps, width=64, height=64
        )
    )
    assert events[-1].HasField("completed"), events[-1]
    return events[0].job_id


def _run(moviola_go: Path, server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(moviola_go), "-server", server.address, *args], capture_output=True, text=True, timeout=120
    )


def test_go_program_extends_a_finished_job_into_a_longer_one(
    moviola_go: Path, server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    source = _finished(client, CONTINUES, 17)
    out = tmp_path / "longer.mp4"
    done = _run(moviola_go, server, "-seconds", "1", "-out", str(out), "extend", source, "the fox runs on")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"extending {source} as ")
    extended = lines[0].split()[-1]
    assert lines[1].startswith(f"job {extended} queued at position")
    assert lines[1].endswith(f"(model {CONTINUES})")
    assert lines[-2].startswith("completed file://")
    assert lines[-1].startswith(f"saved {out} (")
    job = client.get(extended)
    assert (job.state, job.extended_from) == (pb.JOB_STATE_COMPLETED, source)
    assert job.result.num_frames == 17 + 25 - 1  # 1 s more at 24 fps, joined at one frame
    assert out.read_bytes() == Path(lines[-2].removeprefix("completed file://")).read_bytes()

    no_seconds = _run(moviola_go, server, "extend", source, "more")
    assert no_seconds.returncode == 2
    assert "usage: moviola-go" in no_seconds.stderr
    # Wan2.1 has no image-to-video path and names no partner that continues its videos.
    one_window = _run(moviola_go, server, "-seconds", "1", "extend", _finished(client, EDITS, 5), "more")
    assert one_window.returncode == 1
    assert "InvalidArgument" in one_window.stderr
    assert f"video: model {EDITS} cannot continue" in one_window.stderr
    missing = _run(moviola_go, server, "-seconds", "1", "extend", "0" * 32, "more")
    assert missing.returncode == 1
    assert "NotFound" in missing.stderr


def test_go_program_edits_a_finished_job_on_a_model_that_can(
    moviola_go: Path, server: ServerProcess, client: Client
) -> None:
    source = _finished(client, EDITS, 9, steps=2)
    done = _run(moviola_go, server, "-strength", "1", "edit", source, "a wolf")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"editing {source} as ")
    edited = lines[0].split()[-1]
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["1/2", "2/2"]  # strength 1
    assert lines[-1].startswith("completed file://")
    job = client.get(edited)
    assert (job.state, job.edited_from) == (pb.JOB_STATE_COMPLETED, source)
    assert (job.result.num_frames, job.result.width, job.result.height) == (9, 64, 64)

    too_far = _run(moviola_go, server, "-strength", "2", "edit", source, "a wolf")
    assert too_far.returncode == 1
    assert "InvalidArgument" in too_far.stderr
    assert "strength" in too_far.stderr
    cannot = _run(moviola_go, server, "edit", _finished(client, TEXT_ONLY, 5), "a wolf")
    assert cannot.returncode == 1
    assert "InvalidArgument" in cannot.stderr
    assert f"model: {TEXT_ONLY} cannot edit videos; served models that can: {EDITS}" in cannot.stderr


@pytest.fixture(scope="module")
def guarded(
    cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with an auth file (characters belong to a tenant) and a key of each of two tenants."""
    folder = tmp_path_factory.mktemp("go-characters")
    made = {tenant: keys.create_key(folder / "auth.json", tenant) for tenant in ("acme", "globex")}
    args = [
        "--data-dir",
        str(folder),
        "--cache-dir",
        str(cache_dir),
        "--auth-file",
        str(folder / "auth.json"),
    ]
    with ServerProcess(args) as server:
        yield server, made


def _clip(path: Path) -> Path:
    """A 9-frame 96x64 MP4, the video a character's reference image is taken from."""
    path.write_bytes(
        encode_mp4(np.random.default_rng(5).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8), 16)
    )
    return path


def test_go_program_creates_gets_and_deletes_a_character(
    moviola_go: Path, guarded: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    server, keys_of = guarded
    acme = ("-api-key", keys_of["acme"])
    created = _run(moviola_go, server, *acme, "characters", "create", "Ada", str(_clip(tmp_path / "ada.mp4")))
    assert created.returncode == 0, created.stderr
    character_id, name, size = created.stdout.split()
    assert character_id.startswith("char_")
    assert (name, size) == ("Ada", "96x64")
    shown = _run(moviola_go, server, *acme, "characters", "get", character_id)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == created.stdout
    elsewhere = _run(moviola_go, server, "-api-key", keys_of["globex"], "characters", "get", character_id)
    assert elsewhere.returncode == 1
    assert "NotFound" in elsewhere.stderr  # another tenant's character
    deleted = _run(moviola_go, server, *acme, "characters", "delete", character_id)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"deleted {created.stdout}"
    for action in ("get", "delete"):
        gone = _run(moviola_go, server, *acme, "characters", action, character_id)
        assert gone.returncode == 1
        assert "NotFound" in gone.stderr

    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    bad = _run(moviola_go, server, *acme, "characters", "create", "Bad", str(tmp_path / "bad.mp4"))
    assert bad.returncode == 1
    assert "InvalidArgument" in bad.stderr
    assert "desc = video: " in bad.stderr
    absent = _run(moviola_go, server, *acme, "characters", "create", "Bad", str(tmp_path / "absent.mp4"))
    assert absent.returncode == 1
    assert "no such file" in absent.stderr
    for wrong in (["characters", "list"], ["characters"], []):
        assert _run(moviola_go, server, *acme, *wrong).returncode == 2, wrong


def test_go_program_creates_a_character_on_a_server_without_an_auth_file(
    moviola_go: Path, server: ServerProcess, tmp_path: Path
) -> None:
    created = _run(moviola_go, server, "characters", "create", "Ada", str(_clip(tmp_path / "ada.mp4")))
    assert created.returncode == 0, created.stderr
    character_id = created.stdout.split()[0]
    read = _run(moviola_go, server, "characters", "get", character_id)
    assert read.stdout == created.stdout
