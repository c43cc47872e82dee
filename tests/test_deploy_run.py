"""What the cluster would run, run: the dev overlay's gateway and worker command lines as local processes.

Each container's command, args and environment come from the rendered manifests (ConfigMaps
resolved, each Secret volume's files written under a local folder that stands for its mount path);
only what a laptop cannot have is replaced, and the test says so in one place (``LOCAL``): the
Redis Service address by a local redis-server, S3 by a local folder, the fixed ports by free ones,
the secret volumes' mount paths, the GPU model by the tiny one on the CPU. Then a video is generated
through the gateway, and the worker's readiness probe and the images' HEALTHCHECKs run against the processes. A second test installs the gateway's dependency set
(no [worker] or [dev] extra) into a fresh venv and proves it imports and serves without torch or test tools.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from harness.servers import RedisServer
from helpers import decode
from manifests import (
    ROOT,
    Command,
    Obj,
    command,
    containers,
    healthcheck,
    named,
    render,
    replace_arg,
    secret_files,
)

from moviola.auth import keys
from moviola.client import Client
from moviola.testing import ServerProcess, free_ports


def _container(objects: list[Obj], cli: str) -> tuple[Obj, Obj]:
    (found,) = [
        (w, c)
        for w, c in containers(objects)
        if c.get("command") == ["moviola", cli] and "ltx" not in w["metadata"]["name"]
    ]
    return found


def _moviola() -> str:
    return str(Path(sys.executable).parent / "moviola")


def _with_secret_files(objects: list[Obj], workload: Obj, container: Obj, root: Path) -> Command:
    """The container's command with each file its Secret volumes hold written under ``root`` (same path)."""
    run = command(objects, container)
    local: dict[str, str] = {}
    for path, (name, key) in secret_files(workload, container).items():
        local[path] = str(root / path.lstrip("/"))
        Path(local[path]).parent.mkdir(parents=True, exist_ok=True)
        Path(local[path]).write_text(named(objects, "Secret", name)["stringData"][key])

    def moved(arg: str) -> str:  # --option=PATH
        option, _, value = arg.partition("=")
        return f"{option}={local[value]}" if value in local else arg

    return Command([moved(arg) for arg in run.argv], {k: local.get(v, v) for k, v in run.env.items()})


def _runs(argv: list[str], port: int) -> int:
    """A probe's or HEALTHCHECK's exit status, run here: this Python, a local port for the image's."""
    assert argv[0].startswith("python")
    return subprocess.run(
        [sys.executable, *argv[1:-1], str(port)], capture_output=True, timeout=30
    ).returncode


@pytest.mark.timeout(300)
def test_the_dev_overlays_gateway_and_worker_generate_a_video(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    objects = render("dev")
    gateway_workload, gateway_container = _container(objects, "serve")
    worker_workload, worker_container = _container(objects, "worker")
    mounts = tmp_path / "mounts"  # LOCAL: the secret volumes' files, under this folder
    gateway = _with_secret_files(objects, gateway_workload, gateway_container, mounts)
    worker = _with_secret_files(objects, worker_workload, worker_container, mounts)
    auth_file = mounts / "etc/moviola/secrets/auth.json"
    key = keys.create_key(auth_file, "acme")  # the Secret's auth.json holds no key until an operator adds one
    grpc_port, http_port, metrics_port, worker_metrics = free_ports(4)
    storage = f"file://{tmp_path / 'videos'}"
    # LOCAL: what differs from the cluster, and nothing else.
    local = {
        "MOVIOLA_REDIS_URL": redis_server.url,
        "MOVIOLA_STORAGE_URL": storage,
        "MOVIOLA_LOG_FORMAT": "text",
    }
    gateway_argv = gateway.argv
    for option, value in (
        ("--port", str(grpc_port)),
        ("--http-port", str(http_port)),
        ("--metrics-port", str(metrics_port)),
    ):
        gateway_argv = replace_arg(gateway_argv, option, value)
    worker_argv = replace_arg(worker.argv, "--model", "tiny-wan2.2-t2v")
    worker_argv = replace_arg(worker_argv, "--metrics-port", str(worker_metrics))
    worker_argv = replace_arg(worker_argv, "--compile-cache-dir", str(tmp_path / "compile-cache"))
    worker_env = {
        **worker.env,
        **local,
        "MOVIOLA_DEVICE": "cpu",
        "MOVIOLA_WORKER_NAME": "worker-local-0",
        "MOVIOLA_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HOME": str(tmp_path / "hub"),
    }
    gateway_env = {**gateway.env, **local, "MOVIOLA_SEARCH_INDEX": str(tmp_path / "search")}
    assert gateway_argv[:2] == ["moviola", "serve"]
    assert worker_argv[:2] == ["moviola", "worker"]
    with (
        ServerProcess(worker_argv[2:], program=[_moviola(), "worker"], worker=True, env=worker_env) as w,
        ServerProcess(gateway_argv[2:], program=[_moviola(), "serve"], env=gateway_env) as g,
        Client(g.address, api_key=key, timeout=120) as client,
    ):
        assert any("worker-local-0" in line for line in w.log_lines)
        assert any("compiled and warmed up" in line for line in w.log_lines)  # MOVIOLA_COMPILE, before ready
        assert any((tmp_path / "compile-cache").rglob("*"))
        assert g.address.endswith(f":{grpc_port}")
        # The worker's readiness probe (moviola_ready on its metrics port), the images' HEALTHCHECKs.
        assert _runs(worker_container["readinessProbe"]["exec"]["command"], worker_metrics) == 0
        assert _runs(healthcheck("worker"), worker_metrics) == 0
        assert _runs(healthcheck("gateway"), grpc_port) == 0
        assert _runs(healthcheck("gateway"), worker_metrics) != 0  # no gRPC health there
        events = list(client.generate("a fox", model="tiny-wan2.2-t2v", num_frames=5, num_inference_steps=2))
        done = events[-1]
        assert done.WhichOneof("kind") == "completed", done
        out = tmp_path / "fox.mp4"
        client.download_to(done.job_id, out)
        frames, codec, _ = decode(out)
        assert frames.shape[0] == 5
        assert codec == "h264"


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


@pytest.mark.timeout(900)
def test_the_gateway_installs_and_serves_without_torch(redis_server: RedisServer, tmp_path: Path) -> None:
    env_dir = tmp_path / "gateway-venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    # The gateway image's dependency set: the client and the server without the [worker] extra.
    installed = _run(
        [python, "-m", "pip", "install", "-q", str(ROOT / "clients/python"), str(ROOT)], timeout=840
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    missing = _run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'diffusers', 'pytest', 'hypothesis') if u.find_spec(m)])",
        ]
    )
    assert missing.stdout.strip() == "[]"
    # What the installed package offers imports there: the processes and the test helper.
    imported = _run([python, "-c", "import moviola.runtime.gateway, moviola.testing"], cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr[-2000:]
    refused = _run([str(env_dir / "bin" / "moviola"), "serve", "--data-dir", str(tmp_path / "d")])
    assert refused.returncode != 0
    assert "pip install 'moviola[worker]'" in refused.stderr  # embedded mode runs models: a clear error
    gateway_cmd = [str(env_dir / "bin" / "moviola"), "serve", "--redis-url", redis_server.url]
    no_lance = _run(
        [*gateway_cmd, "--search-index", str(tmp_path / "index"), "--data-dir", str(tmp_path / "d")]
    )
    assert no_lance.returncode != 0
    assert "pip install 'moviola[search]'" in no_lance.stderr  # search without its extra: a clear error
    simulated = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
    clean_env = {"PYTHONPATH": "", "VIRTUAL_ENV": str(env_dir)}
    with (
        ServerProcess(
            ["--redis-url", redis_server.url, "--data-dir", str(tmp_path), "--model", "tiny-wan2.2-t2v"],
            program=simulated,
            worker=True,
        ),
        ServerProcess(
            ["--redis-url", redis_server.url, "--data-dir", str(tmp_path)],
            program=[str(env_dir / "bin" / "moviola"), "serve"],
            env=clean_env,
        ) as gateway,
        Client(gateway.address, timeout=60) as client,
    ):
        events = list(client.generate("a fox", model="tiny-wan2.2-t2v", num_frames=5, num_inference_steps=2))
        assert events[-1].WhichOneof("kind") == "completed"
    assert os.path.exists(env_dir / "bin" / "moviola")
