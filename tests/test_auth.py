"""API keys per tenant and tenant isolation, end to end on a real server with --auth-file.

The auth matrix through the Python client, the CLI, grpcurl and the Go example (grpcurl and Go on both the embedded server and a Redis gateway): no key, a wrong
key, a revoked key after SIGHUP, tenant B on tenant A's job (NOT_FOUND for every RPC), an admin key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import moviola

from moviola.auth import keys
from moviola.client import Client, NotFound, PermissionDenied, RequestOptions, Unauthenticated
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
SMALL: RequestOptions = {"num_frames": 9, "num_inference_steps": 2, "width": 64, "height": 64}


def auth_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moviola.runtime", "auth", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def auth_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth") / "auth.json"


@pytest.fixture(scope="module")
def tenant_keys(auth_file: Path) -> dict[str, str]:
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    made["ops"] = keys.create_key(auth_file, "ops", admin=True)
    data = json.loads(auth_file.read_text())
    data["tenants"]["narrow"] = {"models": ["tiny-wan2.1-t2v"], "keys": []}
    auth_file.write_text(json.dumps(data))
    made["narrow"] = keys.create_key(auth_file, "narrow")
    return made


@pytest.fixture(scope="module")
def guarded(
    auth_file: Path, tenant_keys: dict[str, str], cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    args = ["--data-dir", str(tmp_path_factory.mktemp("data")), "--cache-dir", str(cache_dir)]
    with ServerProcess([*args, "--auth-file", str(auth_file), "--also-serve", "tiny-wan2.1-t2v"]) as server:
        yield server


def test_keys_are_stored_hashed_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    key = keys.create_key(path, "acme")
    assert key.startswith("mvk_")
    assert key not in path.read_text()
    assert key.split("_", 2)[2] not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = keys.load(path)
    caller = ring.verify(key)
    assert caller is not None
    assert caller.tenant == "acme"
    assert not caller.admin
    assert ring.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert ring.verify("mvk_000000000000_" + "x" * 43) is None
    assert ring.verify("not a key") is None
    assert keys.revoke_key(path, key) == "acme"
    assert keys.load(path).verify(key) is None
    with pytest.raises(keys.AuthFileError, match="no key"):
        keys.revoke_key(path, key)


def test_a_malformed_auth_file_is_refused_with_where(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text('{"tenants": {"acme": {"keys": [{"id": "zz"}]}}}')
    with pytest.raises(keys.AuthFileError, match="tenant 'acme'"):
        keys.load(path)
    path.write_text("{not json")
    with pytest.raises(keys.AuthFileError, match="cannot read"):
        keys.load(path)


def test_create_key_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    made = auth_command("create-key", "--auth-file", str(path), "--tenant", "acme", "--admin")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n"
    assert "acme" in made.stderr
    caller = keys.load(path).verify(key)
    assert caller is not None
    assert caller.admin
    listed = auth_command("list-keys", "--auth-file", str(path))
    assert listed.stdout.split("\t")[:2] == ["acme", keys.key_id_of(key)]
    assert key not in listed.stdout
    revoked = auth_command("revoke-key", "--auth-file", str(path), key)
    assert revoked.returncode == 0
    assert auth_command("revoke-key", "--auth-file", str(path), key).returncode == 1


def test_no_key_or_a_wrong_key_is_unauthenticated_and_health_needs_none(
    guarded: ServerProcess, tenant_keys: dict[str, str]
) -> None:
    for key in (None, "mvk_000000000000_" + "x" * 43, tenant_keys["acme"] + "x"):
        with Client(guarded.address, api_key=key) as client:
            with pytest.raises(Unauthenticated):
                client.submit("a fox", **SMALL)
            with pytest.raises(Unauthenticated):
                client.list_models()
            with pytest.raises(Unauthenticated):
                client.embed(text="a fox")
            with pytest.raises(Unauthenticated):
                list(client.watch("0" * 32))
    with grpc.insecure_channel(guarded.address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())  # type: ignore[attr-defined]
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert any("authentication: 4 tenants, 4 keys" in line for line in guarded.log_lines)


def test_another_tenants_job_is_not_found_by_every_rpc(
    guarded: ServerProcess, tenant_keys: dict[str, str]
) -> None:
    with (
        Client(guarded.address, api_key=tenant_keys["acme"]) as acme,
        Client(guarded.address, api_key=tenant_keys["globex"]) as globex,
    ):
        done = list(acme.generate("acme's fox", **SMALL))[-1]
        assert done.WhichOneof("kind") == "completed"
        job_id = done.job_id
        assert acme.get(job_id).state == pb.JOB_STATE_COMPLETED
        for attempt in (
            lambda: globex.get(job_id),
            lambda: list(globex.watch(job_id)),
            lambda: globex.cancel(job_id),
            lambda: list(globex.download(job_id)),
            lambda: globex.embed(job_id=job_id),
        ):
            with pytest.raises(NotFound) as caught:
                attempt()
            assert caught.value.message.endswith(f"job {job_id!r} not found")  # as for no job at all
        assert len(acme.embed(job_id=job_id).vector) > 0
        stored = acme.get(job_id).result.video_uri  # a file:// URI under the server's data folder
        with pytest.raises(PermissionDenied) as refused:
            globex.embed(video_uri=stored)  # a server path would reach around tenant isolation
        assert "admin keys" in refused.value.message
        with Client(guarded.address, api_key=tenant_keys["ops"]) as ops:
            assert len(ops.embed(video_uri=stored).vector) > 0  # operators still may


def test_idempotency_keys_are_per_tenant(guarded: ServerProcess, tenant_keys: dict[str, str]) -> None:
    with (
        Client(guarded.address, api_key=tenant_keys["acme"]) as acme,
        Client(guarded.address, api_key=tenant_keys["globex"]) as globex,
    ):
        first = acme.submit("a fox", idempotency_key="order-1", num_frames=9, num_inference_steps=2)
        assert (
            acme.submit("a fox", idempotency_key="order-1", num_frames=9, num_inference_steps=2).id
            == first.id
        )
        other = globex.submit("a fox", idempotency_key="order-1", num_frames=9, num_inference_steps=2)
        assert other.id != first.id


def test_dead_letters_are_for_admin_keys_and_models_for_the_tenants_allowed(
    guarded: ServerProcess, tenant_keys: dict[str, str]
) -> None:
    with Client(guarded.address, api_key=tenant_keys["acme"]) as acme:
        with pytest.raises(PermissionDenied, match="admin"):
            acme.dead_letters()
        with pytest.raises(PermissionDenied, match="admin"):
            acme.requeue("0" * 32)
    with Client(guarded.address, api_key=tenant_keys["ops"]) as ops:
        assert ops.dead_letters() == []
    with Client(guarded.address, api_key=tenant_keys["narrow"]) as narrow:
        with pytest.raises(PermissionDenied, match=r"may not use model tiny-wan2\.2-t2v"):
            narrow.submit("a fox", **SMALL)
        assert (
            narrow.submit("a fox", model="tiny-wan2.1-t2v", num_frames=9, num_inference_steps=2).model
            == "tiny-wan2.1-t2v"
        )


def test_a_revoked_key_is_refused_after_sighup_and_a_new_one_accepted(
    guarded: ServerProcess, auth_file: Path, tenant_keys: dict[str, str]
) -> None:
    old = keys.create_key(auth_file, "rotating")
    with Client(guarded.address, api_key=old) as client, pytest.raises(Unauthenticated):
        client.list_models()  # not loaded yet: the server has not been told
    seen = len(guarded.log_lines)
    os.kill(guarded.pid, signal.SIGHUP)
    guarded.wait_for_log("auth file reloaded", after=seen)
    with Client(guarded.address, api_key=old) as client:
        assert client.list_models()
    new = keys.create_key(auth_file, "rotating")
    keys.revoke_key(auth_file, old)
    seen = len(guarded.log_lines)
    os.kill(guarded.pid, signal.SIGHUP)
    guarded.wait_for_log("auth file reloaded", after=seen)
    with Client(guarded.address, api_key=old) as client, pytest.raises(Unauthenticated):
        client.list_models()
    with Client(guarded.address, api_key=new) as client:
        assert client.list_models()
    auth_file_text = auth_file.read_text()
    auth_file.write_text("{broken")
    seen = len(guarded.log_lines)
    os.kill(guarded.pid, signal.SIGHUP)
    guarded.wait_for_log("the keys loaded before stay in use", after=seen)
    with Client(guarded.address, api_key=new) as client:
        assert client.list_models()
    auth_file.write_text(auth_file_text)


def test_the_cli_takes_the_key_from_a_flag_or_the_environment(
    guarded: ServerProcess, tenant_keys: dict[str, str]
) -> None:
    refused = moviola("models", "--server", guarded.address)
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr
    assert "Traceback" not in refused.stderr
    flag = moviola("models", "--server", guarded.address, "--api-key", tenant_keys["acme"])
    assert flag.returncode == 0, flag.stderr
    assert "tiny-wan2.2-t2v" in flag.stdout
    env = moviola("models", "--server", guarded.address, env={"MOVIOLA_API_KEY": tenant_keys["acme"]})
    assert env.returncode == 0, env.stderr


@pytest.fixture(params=["embedded", "gateway"])
def front(
    request: pytest.FixtureRequest, guarded: ServerProcess, auth_file: Path, tenant_keys: dict[str, str]
) -> Iterator[ServerProcess]:
    """The embedded server, or a Redis gateway with a simulated worker, both with the same auth file."""
    if request.param == "embedded":
        yield guarded
        return
    url: str = request.getfixturevalue("redis_url")
    data = str(request.getfixturevalue("tmp_path"))
    program = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
    with (
        ServerProcess(["--redis-url", url, "--auth-file", str(auth_file), "--data-dir", data]) as gateway,
        ServerProcess(["--redis-url", url, "--data-dir", data, "--name", "w"], program=program, worker=True),
    ):
        yield gateway


def test_grpcurl_sends_the_key_as_a_header_and_reflection_is_off(
    front: ServerProcess, tenant_keys: dict[str, str]
) -> None:
    guarded = front
    base = [
        GRPCURL,
        "-plaintext",
        "-import-path",
        str(ROOT / "protos"),
        "-proto",
        "moviola/v1/generation.proto",
    ]
    call = [guarded.address, "moviola.v1.GenerationService/ListModels"]
    listed = subprocess.run([GRPCURL, "-plaintext", guarded.address, "list"], capture_output=True, text=True)
    assert listed.returncode != 0  # no reflection with an auth file
    refused = subprocess.run([*base, *call], capture_output=True, text=True, timeout=60)
    assert "Unauthenticated" in refused.stderr
    header = ["-H", f"authorization: Bearer {tenant_keys['acme']}"]
    answered = subprocess.run([*base, *header, *call], capture_output=True, text=True, timeout=60)
    assert answered.returncode == 0, answered.stderr
    assert "tiny-wan2.2-t2v" in answered.stdout


def test_the_go_example_sends_its_api_key(front: ServerProcess, tenant_keys: dict[str, str]) -> None:
    guarded = front
    go_binary = ROOT / "clients/go/bin/moviola-go"
    built = subprocess.run(["make", "-s", "go"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    args = [str(go_binary), "-server", guarded.address, "-frames", "5", "-steps", "2"]
    refused = subprocess.run([*args, "generate", "a fox"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "Unauthenticated" in refused.stderr
    done = subprocess.run(
        [*args, "-api-key", tenant_keys["acme"], "generate", "a fox"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("completed ")


def test_without_an_auth_file_the_server_says_it_is_open(cache_dir: Path, tmp_path: Path) -> None:
    with ServerProcess(
        ["--data-dir", str(tmp_path), "--cache-dir", str(cache_dir), "--host", "0.0.0.0"]
    ) as server:
        assert any("UNAUTHENTICATED ON 0.0.0.0" in line and "WARNING" in line for line in server.log_lines)


def test_jobs_list_shows_the_tenants_own_jobs(guarded: ServerProcess, tenant_keys: dict[str, str]) -> None:
    with Client(guarded.address, api_key=tenant_keys["globex"]) as globex:
        job = globex.submit("globex's only", num_frames=9, num_inference_steps=2)
    listed = moviola("jobs", "list", "--server", guarded.address, "--api-key", tenant_keys["globex"])
    assert listed.returncode == 0, listed.stderr
    assert job.id in listed.stdout
    assert "globex's only" in listed.stdout
    others = moviola("jobs", "list", "--server", guarded.address, "--api-key", tenant_keys["ops"])
    assert job.id not in others.stdout
