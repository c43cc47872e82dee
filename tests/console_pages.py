"""The browser console's test fixtures: a real embedded server, Debian's chromium through Playwright,
and the steps the tests share (registered in conftest.py as a plugin).

One embedded server per test module with an auth file (an admin key and a tenant's key), the tiny
models, a search index and a tiny LoRA adapter. Playwright's own browser download cannot work here:
``executable_path`` is the apt package's chromium (scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from moviola.auth import keys
from moviola.pipelines.tiny_lora import build_tiny_lora
from moviola.testing import ServerProcess, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T2V, I2V = "tiny-wan2.2-t2v", "tiny-wan2.2-i2v"
REFUSED = "Failed to load resource: the server responded with a status of 4"
HOSTILE = "<img src=x onerror=alert(1)> a fox"


@dataclass
class Console:
    server: ServerProcess
    base: str
    admin_key: str
    tenant_key: str


@pytest.fixture(scope="module")
def served(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    auth_file = folder / "auth.json"
    admin_key = keys.create_key(auth_file, "ops", admin=True)
    tenant_key = keys.create_key(auth_file, "acme")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    args += ["--auth-file", str(auth_file), "--also-serve", I2V, "--search-index", str(folder / "search")]
    build_tiny_lora(folder / "loras" / "style", T2V, seed=1)
    args += ["--lora-dir", str(folder / "loras")]
    with ServerProcess(args) as server:
        yield Console(server, f"http://127.0.0.1:{port}", admin_key, tenant_key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: `make system-deps` installs Debian's package"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) that fails the test on any script error or CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))

    def seen(message: ConsoleMessage) -> None:
        # Chromium logs every refused fetch; the refusals the page meets are checked where they matter.
        if message.type == "error" and not message.text.startswith(REFUSED):
            problems.append(f"console: {message.text}")

    opened.on("console", seen)
    yield opened
    context.close()
    assert problems == []


def sign_in(page: Page, base: str, key: str) -> None:
    page.goto(base + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in")).to_be_visible()


def png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 80, 40)).save(path)
    return path


def create(page: Page, prompt: str, **fields: str) -> None:
    page.goto(page.url.split("#")[0] + "#create")
    page.get_by_label("Prompt", exact=True).fill(prompt)
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Create", exact=True).click()


def shown_sequences(page: Page) -> list[int]:
    return [
        int(n)
        for n in page.locator("#watch-log li").evaluate_all("(items) => items.map((i) => i.dataset.seq)")
    ]


def plays(page: Page, selector: str) -> None:
    """The element's video has decoded a frame (readyState >= 2: HAVE_CURRENT_DATA)."""
    page.wait_for_function(
        f"() => {{ const v = document.querySelector({selector!r}); return v && v.readyState >= 2 && !v.error; }}",
        timeout=30_000,
    )


def made_and_indexed(served: Console, prompt: str) -> str:
    """A completed video of the tenant's, made through REST, and found by search (indexed)."""
    key = {"authorization": f"Bearer {served.tenant_key}"}
    with httpx.Client(base_url=served.base, headers=key, timeout=30) as http:
        video = http.post("/v1/videos", json={"prompt": prompt, "seconds": "1"}).json()
        for _ in range(600):
            status = http.get(f"/v1/videos/{video['id']}").json()["status"]
            answer = http.post("/v1/videos/search", json={"text": prompt})
            hits = answer.json()["data"] if answer.status_code == 200 else []
            if status == "completed" and any(h["video_id"] == video["id"] for h in hits):
                return str(video["id"])
            time.sleep(0.1)
    raise AssertionError(f"the video was not indexed: {status}, {answer.text}")


def completed_video(served: Console, key: str, prompt: str) -> str:
    """A completed video of ``key``'s tenant, made through REST (one step, a few frames)."""
    with httpx.Client(base_url=served.base, headers={"authorization": f"Bearer {key}"}, timeout=30) as http:
        body = {"prompt": prompt, "model": T2V, "steps": 1, "seconds": "0.25"}  # 5 frames at 16 fps
        made = http.post("/v1/videos", json=body)
        assert made.status_code == 200, made.text
        video_id = str(made.json()["id"])
        for _ in range(600):
            if http.get(f"/v1/videos/{video_id}").json()["status"] == "completed":
                return video_id
            time.sleep(0.1)
    raise AssertionError(f"{video_id} did not complete")
