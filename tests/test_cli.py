"""The ``moviola`` command against a live server, as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import grpc
import pytest
from helpers import CLIENT_ONLY, decode, moviola, mp4, scene

from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import generation_pb2 as gen
from moviola.v1 import generation_pb2_grpc
from moviola.v1 import job_pb2 as pb


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
    assert cancel.returncode == 1
    assert f"job {job.id} had already finished (completed); nothing to cancel" in cancel.stderr
    missing = moviola("jobs", "get", "nope", "--server", server.address)
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    models = [
        json.loads(line)
        for line in moviola("models", "--json", "--server", server.address).stdout.splitlines()
    ]
    assert models[0]["id"] == "tiny-wan2.2-t2v"
    assert models[0]["randomWeights"] is True
    table = moviola("models", "--server", server.address, env={"COLUMNS": "200"}).stdout
    assert "tiny-wan2.2-t2v" in table
    assert "random" in table
    assert "tiny 128x128, 480p 832x480" in table  # its size presets, the names --resolution takes


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
    # The stubs, the client and its evaluation harnesses (the [eval] extra); no server code.
    assert "moviola/eval/retrieval.py" in names
    assert not [
        n for n in names if n.startswith("moviola/") and n.split("/")[1] not in ("v1", "client", "eval")
    ]


def test_embed_prints_the_vector_as_json_and_lists_the_models(server: ServerProcess, tmp_path: Path) -> None:
    done = moviola("embed", "--text", "a red fox", "--server", server.address)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1  # one line, not one number per line
    text = json.loads(done.stdout)
    assert list(text) == ["model", "dimension", "embedding"]
    assert text["model"] == "tiny-siglip2"
    assert len(text["embedding"]) == text["dimension"] == 32
    assert abs(sum(v * v for v in text["embedding"]) - 1) < 1e-4
    video = tmp_path / "clip.mp4"
    video.write_bytes(mp4(scene(9)))
    args = ["embed", "--video", str(video), "--frames", "3", "--per-frame", "--server", server.address]
    clip = json.loads(moviola(*args).stdout)
    assert clip["sampled_frames"] == 3
    assert [len(f["embedding"]) for f in clip["frames"]] == [clip["dimension"]] * 3
    full = json.loads(moviola(*args, "--json").stdout)  # the whole response, as protobuf JSON
    assert full["sampledFrames"] == 3
    assert len(full["frames"]) == 3
    assert max(abs(a - b) for a, b in zip(full["vector"], clip["embedding"], strict=True)) < 1e-7
    two = moviola("embed", "--text", "x", "--video", str(video), "--server", server.address)
    assert two.returncode == 2
    assert "exactly one" in two.stderr
    table = moviola("embedding-models", "--server", server.address).stdout
    assert "tiny-dinov2" in table
    assert "tiny-siglip2" in table


#: Each bad number, and the option the usage error must name.
BAD_NUMBERS = [
    (["generate", "x", "--steps", "-1"], "--steps"),
    (["generate", "x", "--seed", "-1"], "--seed"),
    (["generate", "x", "--seed", str(2**63)], "--seed"),
    (["generate", "x", "--max-wait", "0"], "--max-wait"),
    (["generate", "x", "--max-wait", "-2.5"], "--max-wait"),
    (["generate", "x", "--width", "-16"], "--width"),
    (["generate", "x", "--height", "-16"], "--height"),
    (["generate", "x", "--frames", "-1"], "--frames"),
    (["generate", "x", "--fps", "-8"], "--fps"),
    (["generate", "x", "--steps", str(2**32)], "--steps"),
    (["generate", "x", "--guidance", "-1"], "--guidance"),
    (["generate", "x", "--guidance-2", "-0.5"], "--guidance-2"),
    (["embed", "--text", "x", "--frames", "-1"], "--frames"),
    (["jobs", "watch", "abc", "--after", "-1"], "--after"),
]


@pytest.mark.parametrize(
    ("args", "option"), BAD_NUMBERS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_NUMBERS]
)
def test_a_bad_number_is_a_usage_error_before_anything_is_sent(args: list[str], option: str) -> None:
    # Nothing listens on port 1: an error about the server would mean the command tried to send.
    done = moviola(*args, "--server", "127.0.0.1:1")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert f"'{option}'" in errors[0]
    assert "Traceback" not in done.stderr
    assert "UNAVAILABLE" not in done.stderr


def test_a_refused_number_creates_no_job(server: ServerProcess) -> None:
    key = f"cli-bad-steps-{uuid.uuid4()}"
    args = ["generate", "x", "--steps", "-1", "--idempotency-key", key, "--server", server.address]
    done = moviola(*args)
    assert done.returncode == 2
    assert "'--steps'" in done.stderr
    # Had the CLI submitted anything, this key would name that job instead of creating one.
    with grpc.insecure_channel(server.address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = pb.GenerateRequest(prompt="x", num_frames=1, num_inference_steps=1, idempotency_key=key)
        reply = stub.SubmitJob(gen.SubmitJobRequest(request=request), timeout=30)
    assert reply.created


def test_model_ids_are_printed_whole_in_colour(server: ServerProcess) -> None:
    # rich's highlighter would colour the "2.2" in "tiny-wan2.2-t2v": an escape code inside the id.
    colour = {"FORCE_COLOR": "1", "COLUMNS": "80", "TERM": "xterm-256color"}
    table = moviola("models", "--server", server.address, env=colour)
    assert table.returncode == 0, table.stderr
    assert "\x1b[" in table.stdout  # coloured: the check below means something
    assert "tiny-wan2.2-t2v" in table.stdout
    assert "tiny-wan2.2-i2v" in table.stdout
    args = ["generate", "x", "--frames", "1", "--steps", "2", "--server", server.address]
    done = moviola(*args, env=colour)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" in done.stderr
    assert "on model tiny-wan2.2-t2v" in done.stderr
    assert "note: tiny-wan2.2-t2v has random weights" in done.stderr
