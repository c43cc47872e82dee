"""The console's files: served at ``/`` of the HTTP port by the embedded server and a Redis gateway alike,
with a strict Content-Security-Policy and no third-party reference (the wheel ships them: test_packaging.py); ``--no-console``
leaves them out. The browser tests are in test_console.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fakes import ScriptedPipeline
from processes import worker

from moviola.client import Client
from moviola.rest import console
from moviola.runtime.embedded import EmbeddedServer
from moviola.runtime.gateway import GatewayServer
from moviola.settings import Settings
from moviola.testing import ServerProcess, free_port

FILES = sorted(p.name for p in console.FOLDER.iterdir() if p.is_file())


def _csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split(" ", 1)[0]: d.partition(" ")[2] for d in policy.split("; ")}


async def _check_served(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = _csp(page)
        assert policy["default-src"] == "'self'"
        assert policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'"
        assert policy["require-trusted-types-for"] == "'script'"
        assert page.headers["x-content-type-options"] == "nosniff"
        for name in FILES:
            if name != "index.html":
                served = await http.get(f"/console/{name}")
                assert served.status_code == 200, name
                assert served.content == (console.FOLDER / name).read_bytes()
        script = await http.get("/console/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        again = await http.get("/console/app.js", headers={"if-none-match": script.headers["etag"]})
        assert again.status_code == 304
        # The API behind it is unchanged: an unknown path is still OpenAI's 404.
        missing = await http.get("/console/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "invalid_request_error"


async def _check_absent(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/console/app.js")).status_code == 404
        assert (await http.get("/v1/models")).status_code == 200


@pytest.mark.parametrize("console_on", [True, False])
async def test_the_embedded_server_serves_the_console_unless_told_not_to(
    tmp_path: Path, cache_dir: Path, console_on: bool
) -> None:
    settings = Settings.of(port=0, http_port=0, data_dir=tmp_path, cache_dir=cache_dir, console=console_on)
    async with EmbeddedServer(settings, loader=lambda s, _: ScriptedPipeline()) as server:
        assert server.front.http is not None
        base = f"http://127.0.0.1:{server.front.http.port}"
        await (_check_served(base) if console_on else _check_absent(base))


async def test_a_redis_gateway_serves_the_console(tmp_path: Path, redis_url: str) -> None:
    settings = Settings.of(
        port=0, http_port=0, data_dir=tmp_path, redis_url=redis_url, accept_without_workers=True
    )
    async with GatewayServer(settings) as gateway:
        assert gateway.front.http is not None
        base = f"http://127.0.0.1:{gateway.front.http.port}"
        await _check_served(base)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:  # and the operator's view of Redis
            video = (await http.post("/v1/videos", json={"prompt": "waits", "priority": "batch"})).json()
            fleet = (await http.get("/v1/admin/fleet")).json()
        model = next(m for m in fleet["models"] if m["model"] == video["moviola_model"])
        assert model == {
            "model": video["moviola_model"],
            "workers": [],
            "queued": {"interactive": 0, "batch": 1},
            "running": [],
            "busy": [],
        }
        assert [(t["tenant"], t["queued"], t["running"]) for t in fleet["tenants"]] == [("", 1, 0)]


def test_the_console_refers_to_nothing_outside_its_server() -> None:
    for name in FILES:
        text = (console.FOLDER / name).read_text()
        assert not re.search(
            r"(?<![\w.])(https?:)?//[\w.-]+\.\w", text.replace("http://www.w3.org/2000/svg", "")
        ), name
        if name.endswith((".js", ".html")):
            # No HTML sink: strings become text. (The policy's Trusted Types would refuse one anyway.)
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text), name
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", text), name


def test_the_option_is_on_the_command_line() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "moviola.runtime", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--console / --no-console" in shown.stdout
    assert Settings.of().server.console is True
    assert Settings.of(console=False).server.console is False


def test_the_fleet_says_what_each_worker_runs(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    with (
        ServerProcess(["--redis-url", redis_url, "--http-port", str(port)]) as gateway,
        worker(redis_url, tmp_path, "gpu-7", "--model", "tiny-wan2.2-t2v", step_seconds=0.5),
        Client(gateway.address) as client,
    ):
        job = client.submit("slow", model="tiny-wan2.2-t2v", num_inference_steps=20)
        for event in client.watch(job.id):
            if event.HasField("started"):
                break
        fleet = httpx.get(f"http://127.0.0.1:{port}/v1/admin/fleet", timeout=30).json()
        client.cancel(job.id)
    model = next(m for m in fleet["models"] if m["model"] == "tiny-wan2.2-t2v")
    assert model["workers"] == ["gpu-7"]
    assert model["busy"] == [{"worker": "gpu-7", "video_id": job.id}]
