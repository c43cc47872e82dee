"""Take docs/console.md's screenshots: a real embedded server (tiny models, search, an auth file), Debian's
chromium through Playwright, one picture per page into docs/console/.

python scripts/console_screenshots.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from moviola.auth import keys
from moviola.testing import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
PROMPTS = ("a red fox running through snow", "a lighthouse at dusk, waves below", "rain on a tin roof")


def _wait_done(http: httpx.Client, video_id: str) -> None:
    for _ in range(600):
        if http.get(f"/v1/videos/{video_id}").json()["status"] in ("completed", "failed"):
            return
        time.sleep(0.1)


def _shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)  # posters and previews drawn
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"wrote docs/console/{name}.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="moviola-shots-"))
    auth_file = folder / "auth.json"
    admin = keys.create_key(auth_file, "ops", admin=True)
    keys.create_key(auth_file, "acme")  # a tenant for the operator view to list
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["--data-dir", str(folder), "--cache-dir", str(ROOT / ".demo" / "cache"), "--http-port", str(port)]
    args += ["--auth-file", str(auth_file), "--search-index", str(folder / "search")]
    with (
        ServerProcess(args) as _,
        httpx.Client(base_url=base, headers={"authorization": f"Bearer {admin}"}) as http,
        sync_playwright() as p,
    ):
        for prompt in PROMPTS:
            _wait_done(http, http.post("/v1/videos", json={"prompt": prompt, "seconds": "1"}).json()["id"])
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(base + "/")
        page.get_by_label("API key").fill("mvk_" + "x" * 20)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).not_to_be_empty()
        _shoot(page, "signin")
        page.get_by_label("API key").fill(admin)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Prompt", exact=True).fill("a paper boat drifting down a rainy street")
        page.get_by_label("Seconds", exact=True).fill("999")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.locator("#e-seconds")).not_to_be_empty()
        _shoot(page, "create")
        page.get_by_label("Seconds", exact=True).fill("1")
        page.get_by_label("Steps", exact=True).fill("40")
        page.get_by_role("button", name="Create", exact=True).click()
        page.wait_for_function("() => document.getElementById('watch-steps').value >= 20", timeout=60_000)
        _shoot(page, "watch")
        expect(page.locator("#watch-status")).to_contain_text("completed", timeout=60_000)
        page.get_by_role("link", name="Library").click()
        expect(page.locator("#library-list img.poster").first).to_be_visible()
        _shoot(page, "library")
        page.get_by_role("link", name="Search").click()
        page.get_by_label("Describe what you look for").fill("a fox in the snow")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator("#search-list li.card").first).to_be_visible()
        _shoot(page, "search")
        page.get_by_role("link", name="Operator").click()
        expect(page.locator("#op-tenants tr[data-tenant='acme']")).to_be_visible()
        _shoot(page, "operator")
        browser.close()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
