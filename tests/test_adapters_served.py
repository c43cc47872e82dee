"""LoRA adapters and turbo through the real faces: gRPC, the CLI, the openai SDK, and a Redis worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import moviola
from processes import gateway

from moviola.auth import keys
from moviola.client import Client
from moviola.client.errors import InvalidArgument, PermissionDenied
from moviola.jobs import JobRequest, LoraChoice
from moviola.pipelines.tiny_lora import build_tiny_lora
from moviola.testing import ServerProcess, free_port
from moviola.v1 import job_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
SMALL: dict[str, Any] = {"width": 64, "height": 64, "num_frames": 5, "num_inference_steps": 2, "seed": 3}
#: The SDK types size and seconds as Sora's literals; it sends whatever it is given.
SORA_SMALL: dict[str, Any] = {"size": "64x64", "seconds": "1"}


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served-loras")
    build_tiny_lora(folder / "style", "tiny-wan2.2-t2v", seed=1)
    build_tiny_lora(folder / "other", "tiny-wan2.2-t2v", seed=2)
    return folder


@pytest.fixture(scope="module")
def served(
    cache_dir: Path, lora_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("adapters-server")
    auth_file = folder / "auth.json"
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    allow = [sys.executable, "-m", "moviola.runtime", "auth", "allow", "--auth-file", str(auth_file)]
    done = subprocess.run(
        [*allow, "--tenant", "globex", "--adapter", "other"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr  # globex may use only "other"
    assert json.loads(auth_file.read_text())["tenants"]["globex"]["adapters"] == ["other"]
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    args += ["--auth-file", str(auth_file), "--lora-dir", str(lora_dir), "--also-serve", "tiny-wan2.1-t2v"]
    with ServerProcess(args) as server:
        yield server, f"http://127.0.0.1:{port}/v1", made


def _client(served: tuple[ServerProcess, str, dict[str, str]], tenant: str) -> Client:
    return Client(served[0].address, timeout=60, api_key=served[2][tenant])


def test_list_models_shows_each_tenants_adapters_and_turbo(
    served: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    with _client(served, "acme") as acme, _client(served, "globex") as globex:
        mine = {m.id: m for m in acme.list_models()}
        theirs = {m.id: m for m in globex.list_models()}
    assert [a.name for a in mine["tiny-wan2.2-t2v"].adapters] == ["other", "style"]
    assert [a.name for a in theirs["tiny-wan2.2-t2v"].adapters] == ["other"]
    assert list(mine["tiny-wan2.1-t2v"].adapters) == []  # registered for the other family only
    assert mine["tiny-wan2.2-t2v"].turbo.steps == 4
    assert mine["tiny-wan2.2-t2v"].turbo.adapter == "tiny-wan2.2-t2v-turbo"


def test_generate_with_adapters_reports_them_and_the_errors_name_the_field(
    served: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    with _client(served, "acme") as acme, _client(served, "globex") as globex:
        plain = list(acme.generate("a fox", **SMALL))[-1].completed
        styled_events = list(acme.generate("a fox", loras=["style:0.8"], **SMALL))
        styled = styled_events[-1].completed
        first = next(e.progress for e in styled_events if e.WhichOneof("kind") == "progress")
        assert [(lo.name, round(lo.scale, 3)) for lo in first.loras] == [("style", 0.8)]
        assert [(lo.name, round(lo.scale, 3)) for lo in styled.loras] == [("style", 0.8)]
        assert list(plain.loras) == []
        assert styled.transformer_passes == plain.transformer_passes == 4  # 2 steps with guidance
        assert styled.quantization == "none"
        with pytest.raises(
            InvalidArgument, match=r"loras\[0\]\.name: unknown adapter 'nope'.*serves: other, style"
        ):
            list(acme.generate("a fox", loras=["nope"], **SMALL))
        with pytest.raises(InvalidArgument, match=r"loras\[0\]\.scale: must be within -4\.\.4"):
            list(acme.generate("a fox", loras=["style:9"], **SMALL))
        with pytest.raises(
            InvalidArgument, match=r"adapter style is for tiny-wan2\.2-t2v, not model tiny-wan2\.1-t2v"
        ):
            list(acme.generate("a fox", model="tiny-wan2.1-t2v", loras=["style"], **SMALL))
        with pytest.raises(PermissionDenied, match="tenant globex may not use adapter style"):
            list(globex.generate("a fox", loras=["style"], **SMALL))
        assert list(globex.generate("a fox", loras=["other"], **SMALL))[-1].WhichOneof("kind") == "completed"


def test_turbo_runs_four_steps_of_one_pass_and_refuses_guidance(
    served: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    with _client(served, "acme") as acme:
        events = list(acme.generate("a fox", speed_profile="turbo", width=64, height=64, num_frames=5))
        steps = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
        done = events[-1].completed
        with pytest.raises(InvalidArgument, match="guidance_scale: has no effect under the turbo profile"):
            list(acme.generate("a fox", speed_profile="turbo", guidance_scale=5.0, num_frames=5))
        with pytest.raises(
            InvalidArgument, match=r"num_inference_steps: must be within 1\.\.8 under the turbo"
        ):
            list(acme.generate("a fox", speed_profile="turbo", num_inference_steps=9, num_frames=5))
    assert [(p.step, p.total_steps, p.transformer_passes) for p in steps] == [(i, 4, 1) for i in range(1, 5)]
    assert done.speed_profile == pb.SPEED_PROFILE_TURBO and done.transformer_passes == 4  # noqa: PT018
    assert [lo.name for lo in done.loras] == ["tiny-wan2.2-t2v-turbo"]
    assert [[lo.name for lo in p.loras] for p in steps] == [
        ["tiny-wan2.2-t2v-turbo"],
        [],
        [],
        [],
    ]  # told once


def test_the_cli_and_the_openai_sdk_name_adapters(
    served: tuple[ServerProcess, str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "styled.mp4"
    env = {"MOVIOLA_API_KEY": served[2]["acme"]}
    result = moviola(
        "generate",
        "a fox",
        "--server",
        served[0].address,
        "--lora",
        "style:0.5",
        "--steps",
        "2",
        "--frames",
        "5",
        "--width",
        "64",
        "--height",
        "64",
        "--json",
        "-o",
        str(out),
        env=env,
    )
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["completed"]["loras"] == [{"name": "style", "scale": 0.5}]
    assert out.stat().st_size > 0
    sdk = openai.OpenAI(base_url=served[1], api_key=served[2]["acme"], max_retries=0)
    try:
        video = sdk.videos.create(
            prompt="a fox", **SORA_SMALL, extra_body={"loras": [{"name": "style", "scale": 0.5}]}
        )
        assert video.model_extra is not None
        assert video.model_extra["loras"] == [{"name": "style", "scale": 0.5}]
        with pytest.raises(openai.BadRequestError, match=r"loras\[0\]\.name"):
            sdk.videos.create(prompt="a fox", **SORA_SMALL, extra_body={"loras": [{"name": "x"}]})
    finally:
        sdk.close()


def test_a_redis_worker_applies_adapters_and_batches_only_one_set(
    redis_url: str, tmp_path: Path, cache_dir: Path, lora_dir: Path
) -> None:
    worker_args = ["--redis-url", redis_url, "--data-dir", str(tmp_path), "--cache-dir", str(cache_dir)]
    worker_args += ["--model", "tiny-wan2.2-t2v", "--lora-dir", str(lora_dir), "--name", "w-lora"]
    with (
        gateway(redis_url, "--data-dir", str(tmp_path), "--lora-dir", str(lora_dir)) as gw,
        ServerProcess(worker_args, worker=True),
        Client(gw.address, timeout=60) as client,
    ):
        done = list(client.generate("a fox", model="tiny-wan2.2-t2v", loras=["other:0.5"], **SMALL))[-1]
    assert [(lo.name, lo.scale) for lo in done.completed.loras] == [("other", 0.5)]
    plain = JobRequest("m", "p", "", None, 64, 64, 5, 16, 2, 5.0, 4.0, 1)
    styled = JobRequest("m", "p", "", None, 64, 64, 5, 16, 2, 5.0, 4.0, 2, loras=(LoraChoice("style"),))
    scaled = JobRequest("m", "p", "", None, 64, 64, 5, 16, 2, 5.0, 4.0, 3, loras=(LoraChoice("style", 0.5),))
    assert len({plain.batch_key(), styled.batch_key(), scaled.batch_key()}) == 3
