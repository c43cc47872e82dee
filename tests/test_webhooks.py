"""Signed webhooks to a real local HTTP receiver that verifies every signature with ``standardwebhooks``."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from stacks import built_stack
from standardwebhooks import Webhook

from moviola.auth import keys
from moviola.client import AsyncClient, Client, FailedPrecondition, InvalidArgument
from moviola.testing import ServerProcess

SECRET = "whsec_" + base64.b64encode(b"moviola-test-webhook-secret-32by").decode()


class Receiver:
    """An HTTP server on a free port; answers 500 to the first ``failures`` requests, then 200."""

    def __init__(self, failures: int = 0, secret: str = SECRET) -> None:
        self.failures = failures
        #: Every request as received: (headers, body).
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[tuple[str, int]] = []  # (webhook-id, status)
        self.delivered: dict[str, dict[str, Any]] = {}
        self.completed = threading.Event()
        self.started = threading.Event()
        self.failed_once = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, body))
                payload = Webhook(secret).verify(body, headers)  # raises on a bad signature
                status = 500 if len(receiver.answers) < receiver.failures else 200
                receiver.answers.append((headers["webhook-id"], status))
                if status == 200:
                    receiver.delivered.setdefault(headers["webhook-id"], payload)
                    if payload["type"] == "job.completed":
                        receiver.completed.set()
                    if payload["type"] == "job.started":
                        receiver.started.set()
                else:
                    receiver.failed_once.set()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=2)
    yield made
    made.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_events_arrive_signed_once_each_after_retries(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path, receiver: Receiver
) -> None:
    options = {"webhook_secrets": (SECRET,), "webhook_allow_hosts": ("127.0.0.1",)}
    async with built_stack(backend, request, tmp_path, cache_dir, **options) as stack:
        job = await stack.client.submit("hooked", num_inference_steps=2, webhook_url=receiver.url)
        assert await asyncio.to_thread(receiver.completed.wait, 30)
        # Each event is retried on its own schedule: the started one may still be in its back-off.
        assert await asyncio.to_thread(receiver.started.wait, 30)
    kinds = {payload["type"] for payload in receiver.delivered.values()}
    assert kinds == {"job.started", "job.completed"}  # the default: no progress, no queue positions
    assert all(p["data"]["job_id"] == job.id for p in receiver.delivered.values())
    assert sum(1 for _, status in receiver.answers if status == 500) == 2  # retried after failures
    delivered = [delivery_id for delivery_id, status in receiver.answers if status == 200]
    assert sorted(delivered) == sorted(set(delivered))  # exactly once each


async def test_webhooks_need_a_secret_and_a_public_host_unless_allowed(
    request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path, receiver: Receiver
) -> None:
    async with built_stack("memory", request, tmp_path, cache_dir) as stack:
        with pytest.raises(FailedPrecondition, match="no secret to sign"):
            await stack.client.submit("x", webhook_url=receiver.url)
    async with built_stack("memory", request, tmp_path, cache_dir, webhook_secrets=(SECRET,)) as stack:
        for url in (receiver.url, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"):
            with pytest.raises(InvalidArgument) as refused:
                await stack.client.submit("x", webhook_url=url)
            assert refused.value.field == "webhook_url"
        with pytest.raises(InvalidArgument) as scheme:
            await stack.client.submit("x", webhook_url="file:///etc/passwd")
        assert scheme.value.field == "webhook_url"
        with pytest.raises(InvalidArgument) as events:
            await stack.client.submit("x", webhook_url=receiver.url, webhook_events=["finished"])
        assert events.value.field == "webhook_events"
        assert receiver.answers == []  # nothing was ever sent


def test_a_delivery_survives_the_gateway_that_was_retrying_it(redis_url: str, tmp_path: Path) -> None:
    receiver = Receiver(failures=10**6)  # down until the test says
    args = ["--redis-url", redis_url, "--webhook-secret", SECRET, "--webhook-allow-host", "127.0.0.1"]
    program = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
    try:
        with ServerProcess(
            ["--redis-url", redis_url, "--data-dir", str(tmp_path)], program=program, worker=True
        ):
            first = ServerProcess(args).start()
            with Client(first.address) as client:
                client.submit(
                    "hooked", num_inference_steps=1, webhook_url=receiver.url, webhook_events=["completed"]
                )
            assert receiver.failed_once.wait(30)
            first.kill()  # SIGKILL: no drain, no goodbye
            receiver.failures = 0  # the receiver is back; the first gateway is gone mid-retry
            with ServerProcess(args):
                assert receiver.completed.wait(60)
        assert [p["type"] for p in receiver.delivered.values()] == ["job.completed"]
        assert json.dumps(receiver.delivered)  # a JSON body, verified above
    finally:
        receiver.close()


async def test_progress_is_opt_in(request: pytest.FixtureRequest, tmp_path: Path, cache_dir: Path) -> None:
    receiver = Receiver()
    try:
        options = {"webhook_secrets": (SECRET,), "webhook_allow_hosts": ("127.0.0.1",)}
        async with built_stack("memory", request, tmp_path, cache_dir, **options) as stack:
            client: AsyncClient = stack.client
            await client.submit(
                "steps",
                num_inference_steps=3,
                webhook_url=receiver.url,
                webhook_events=["progress", "completed"],
            )
            assert await asyncio.to_thread(receiver.completed.wait, 30)
        kinds = sorted(p["type"] for p in receiver.delivered.values())
        assert kinds == ["job.completed", "job.progress", "job.progress", "job.progress"]
    finally:
        receiver.close()


def _verifies(secret: str, received: tuple[dict[str, str], bytes]) -> bool:
    headers, body = received
    try:
        Webhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


def test_a_tenant_with_its_own_secrets_gets_them_alone_and_rotates_them(
    tmp_path: Path, cache_dir: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "moviola.client.cli",
            "auth",
            "add-webhook-secret",
            "--auth-file",
            str(auth_file),
            "--tenant",
            "acme",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    first = added.stdout.strip()
    assert first.startswith("whsec_")
    receiver = Receiver(secret=first)
    args = ["--data-dir", str(tmp_path), "--cache-dir", str(cache_dir), "--auth-file", str(auth_file)]
    try:
        with ServerProcess([*args, "--webhook-allow-host", "127.0.0.1"]) as server:
            with Client(server.address, api_key=made["globex"]) as globex, pytest.raises(FailedPrecondition):
                globex.submit("x", webhook_url=receiver.url)  # no secret of its own, none on the server

            def deliver() -> tuple[dict[str, str], bytes]:
                receiver.completed.clear()
                receiver.received.clear()
                with Client(server.address, api_key=made["acme"]) as acme:
                    acme.submit(
                        "hooked",
                        num_inference_steps=1,
                        webhook_url=receiver.url,
                        webhook_events=["completed"],
                    )
                assert receiver.completed.wait(60)
                return receiver.received[-1]

            def reload() -> None:
                seen = len(server.log_lines)
                os.kill(server.pid, signal.SIGHUP)
                server.wait_for_log("auth file reloaded", after=seen)

            assert _verifies(first, deliver())
            second = keys.add_webhook_secret(auth_file, "acme")
            reload()
            both = deliver()
            assert _verifies(first, both)
            assert _verifies(second, both)
            assert len(both[0]["webhook-signature"].split()) == 2
            assert keys.retire_webhook_secrets(auth_file, "acme") == 1
            reload()
            receiver.close()
            receiver = Receiver(secret=second)
            last = deliver()
            assert _verifies(second, last)
            assert not _verifies(first, last)
    finally:
        receiver.close()
