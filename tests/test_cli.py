"""The ``moviola`` command against a live server, as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import decode, mp4, scene

from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

# The client must work where torch and diffusers are not installed: make importing them fail.
CLIENT_ONLY = (
    "import sys; sys.modules.update(torch=None, diffusers=None, transformers=None, av=None); "
    "sys.argv[0] = 'moviola'; from moviola.client.cli import main; main()"
)


def moviola(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLIENT_ONLY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_python_dash_m_knows_every_command() -> None:
    # How the tests and `moviola serve` start it: every command must be defined before main() runs.
    done = subprocess.run(
        [sys.executable, "-m", "moviola.client.cli", "embedding-models", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "List the embedding models" in done.stdout


def test_generate_writes_the_video_where_asked(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "clips" / "fox.mp4"
    args = ["--server", server.address, "--out", str(out), "--frames", "5", "--steps", "3", "--seed", "5"]
    done = moviola("generate", "a red fox running through snow", *args)
    assert done.returncode == 0, done.stderr
    frames, codec, _ = decode(out)
    assert frames.shape == (5, 128, 128, 3)
    assert codec == "h264"
    assert f"video: {out}" in " ".join(done.stderr.split())
    assert "seed 5" in done.stderr
    assert "random weights" in done.stderr


def test_generate_json_lines_and_bad_input_exit_codes(server: ServerProcess) -> None:
    done = moviola("generate", "a fox", "--server", server.address, "--frames", "5", "--steps", "2", "--json")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["sequence"] for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert "completed" in events[-1]
    bad = moviola("generate", "a fox", "--server", server.address, "--frames", "6")
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: num_frames: must be 4k+1" in bad.stderr


def test_ctrl_c_cancels_the_job_on_the_server(server: ServerProcess, client: Client) -> None:
    args = ["generate", "a long one", "--server", server.address, "--steps", "50", "--frames", "9", "--json"]
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_ONLY, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    job_id = ""
    for line in proc.stdout:
        event = json.loads(line)
        job_id = event["jobId"]
        if "progress" in event:
            proc.send_signal(signal.SIGINT)
            break
    proc.stdout.close()
    assert proc.wait(60) == 130
    events = list(client.watch(job_id))
    assert events[-1].WhichOneof("kind") == "cancelled"
    assert client.get(job_id).state == pb.JOB_STATE_CANCELLED


def test_jobs_and_models_commands(server: ServerProcess, client: Client) -> None:
    job = client.submit("a cat", num_frames=1, num_inference_steps=1)
    watched = moviola("jobs", "watch", job.id, "--server", server.address, "--json")
    assert json.loads(watched.stdout.splitlines()[-1])["completed"]["videoUri"].startswith("file://")
    resumed = moviola("jobs", "watch", job.id, "--after", "3", "--server", server.address, "--json")
    assert json.loads(resumed.stdout.splitlines()[0])["sequence"] == "4"
    got = json.loads(moviola("jobs", "get", job.id, "--server", server.address).stdout)
    assert got["state"] == "JOB_STATE_COMPLETED"
    assert got["id"] == job.id
    cancel = moviola("jobs", "cancel", job.id, "--server", server.address)
    assert cancel.returncode == 0
    assert "completed" in cancel.stdout
    missing = moviola("jobs", "get", "nope", "--server", server.address)
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    models = [
        json.loads(line)
        for line in moviola("models", "--json", "--server", server.address).stdout.splitlines()
    ]
    assert models[0]["id"] == "tiny-wan2.2-t2v"
    assert models[0]["randomWeights"] is True
    table = moviola("models", "--server", server.address).stdout
    assert "tiny-wan2.2-t2v" in table
    assert "random" in table


def test_serve_without_the_server_package_says_what_to_install() -> None:
    code = CLIENT_ONLY.replace("av=None", "av=None, **{'moviola.runtime': None}")
    done = subprocess.run([sys.executable, "-c", code, "serve"], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "needs the Moviola server" in done.stderr
    assert "pip install moviola" in done.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    done = moviola("models", "--server", "127.0.0.1:1")
    assert done.returncode == 1
    assert "UNAVAILABLE" in done.stderr


def test_client_wheel_needs_no_torch_and_carries_the_stubs(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(root / "clients/python"),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("moviola_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = [
        line.split()[1].lower() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    assert not {"torch", "diffusers", "transformers", "av"} & set(requires)
    assert "moviola/v1/generation_pb2.py" in names
    assert "moviola/client/cli.py" in names
    assert not [n for n in names if n.startswith("moviola/") and n.split("/")[1] not in ("v1", "client")]


def test_embed_prints_the_vector_as_json_and_lists_the_models(server: ServerProcess, tmp_path: Path) -> None:
    text = json.loads(moviola("embed", "--text", "a red fox", "--server", server.address).stdout)
    assert text["model"] == "tiny-siglip2"
    assert len(text["vector"]) == text["dimension"] == 32
    video = tmp_path / "clip.mp4"
    video.write_bytes(mp4(scene(9)))
    done = moviola("embed", "--video", str(video), "--frames", "3", "--per-frame", "--server", server.address)
    clip = json.loads(done.stdout)
    assert clip["sampledFrames"] == 3
    assert len(clip["frames"]) == 3
    two = moviola("embed", "--text", "x", "--video", str(video), "--server", server.address)
    assert two.returncode == 2
    assert "exactly one" in two.stderr
    table = moviola("embedding-models", "--server", server.address).stdout
    assert "tiny-dinov2" in table
    assert "tiny-siglip2" in table
