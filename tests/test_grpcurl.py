"""The live server driven by the real grpcurl, through server reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from moviola.testing import ServerProcess

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"


def grpcurl(
    server: ServerProcess, *args: str, data: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``grpcurl -plaintext [-d DATA] ADDRESS ARGS...``"""
    flags = ["-d", data] if data is not None else []
    return subprocess.run(
        [GRPCURL, "-plaintext", *flags, server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def messages(output: str) -> list[dict[str, object]]:
    decoder, found, index = json.JSONDecoder(), [], 0
    output = output.strip()
    while index < len(output):
        message, end = decoder.raw_decode(output, index)
        found.append(message)
        index = end
        while index < len(output) and output[index].isspace():
            index += 1
    return found


def test_list_shows_every_service(server: ServerProcess) -> None:
    services = grpcurl(server, "list").stdout.split()
    assert {"moviola.v1.GenerationService", "moviola.v1.EmbeddingService", "grpc.health.v1.Health"} <= set(
        services
    )


def test_describe_a_message(server: ServerProcess) -> None:
    out = grpcurl(server, "describe", "moviola.v1.GenerateRequest").stdout
    for field in (
        "string prompt = 2",
        "uint32 num_frames = 7",
        "optional uint64 seed = 12",
        "guidance_scale_2",
    ):
        assert field in out


def test_health_check_is_serving(server: ServerProcess) -> None:
    out = grpcurl(server, "grpc.health.v1.Health/Check").stdout
    assert json.loads(out) == {"status": "SERVING"}
    out = grpcurl(
        server, "grpc.health.v1.Health/Check", data='{"service": "moviola.v1.GenerationService"}'
    ).stdout
    assert json.loads(out) == {"status": "SERVING"}


def test_streamed_generate_with_json(server: ServerProcess) -> None:
    body = json.dumps({"prompt": "a red fox", "num_frames": 5, "num_inference_steps": 3, "seed": "11"})
    events = [
        m["event"]
        for m in messages(grpcurl(server, "moviola.v1.GenerationService/Generate", data=body).stdout)
    ]
    assert isinstance(events[0], dict)
    assert "queued" in events[0]
    progress = [e["progress"] for e in events if isinstance(e, dict) and "progress" in e]
    assert [p["step"] for p in progress] == [1, 2, 3]
    assert progress[0]["expert"] == "EXPERT_HIGH_NOISE"
    final = events[-1]
    assert isinstance(final, dict)
    completed = final["completed"]
    assert completed["seed"] == "11"
    assert completed["video_uri"].startswith("file://")


def test_invalid_request_and_embed(server: ServerProcess) -> None:
    bad = grpcurl(
        server,
        "moviola.v1.GenerationService/SubmitJob",
        data='{"request": {"prompt": "x", "width": 100}}',
        check=False,
    )
    assert bad.returncode != 0
    assert "InvalidArgument" in bad.stderr
    assert "width: must be a multiple of 16" in bad.stderr
    embed = json.loads(grpcurl(server, "moviola.v1.EmbeddingService/Embed", data='{"text": "a fox"}').stdout)
    assert embed["model"] == "tiny-siglip2"
    assert embed["dimension"] == len(embed["vector"]) == 32
    bad_image = grpcurl(
        server, "moviola.v1.EmbeddingService/Embed", data='{"image": "bm90IGFuIGltYWdl"}', check=False
    )
    assert "InvalidArgument" in bad_image.stderr
    assert "image:" in bad_image.stderr
