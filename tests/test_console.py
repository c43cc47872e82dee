"""The browser console, driven in Debian's chromium (headless, through Playwright) against real servers:
sign-in, create, watch, search, the operator view, speed and accessibility (``console_pages.py`` has the
fixtures). A Redis gateway without an auth file shows what an unauthenticated server says.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from console_pages import (
    HOSTILE,
    I2V,
    T2V,
    Console,
    create,
    made_and_indexed,
    plays,
    png,
    shown_sequences,
    sign_in,
)
from playwright.sync_api import Page, Route, expect

from moviola.testing import ServerProcess, free_port


def test_a_key_is_asked_for_kept_in_the_tab_and_a_wrong_one_is_refused(page: Page, served: Console) -> None:
    page.goto(served.base + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("mvk_000000000000_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("refused (401)")
    expect(page.locator("#nav")).to_be_hidden()

    sign_in(page, served.base, served.tenant_key)
    assert page.evaluate("sessionStorage.getItem('moviola.key')") == served.tenant_key
    assert served.tenant_key not in page.url
    assert page.context.cookies() == []
    page.reload()  # the tab keeps it
    expect(page.locator("#signed-in")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('moviola.key')") is None


def test_without_an_auth_file_the_page_says_the_server_is_unauthenticated(
    page: Page, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    args = ["--redis-url", redis_url, "--accept-without-workers", "--http-port", str(port)]
    with ServerProcess([*args, "--data-dir", str(tmp_path)]):
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200  # how the page can tell
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#unauthenticated")).to_contain_text("Unauthenticated server")
        expect(page.get_by_role("heading", name="Create a video")).to_be_visible()
        expect(page.get_by_role("heading", name="Sign in")).to_be_hidden()


def test_field_errors_appear_next_to_the_field_they_name(page: Page, served: Console, tmp_path: Path) -> None:
    sign_in(page, served.base, served.tenant_key)
    create(page, "a fox", Seconds="999")
    expect(page.locator("#e-seconds")).not_to_be_empty()
    expect(page.get_by_label("Seconds", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#create-error")).to_be_empty()

    page.get_by_label("Model", exact=True).select_option(I2V)  # an image-to-video model asks for an image
    expect(page.get_by_label("Image to start from")).to_be_visible()
    page.get_by_label("Seconds", exact=True).fill("1")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#e-input_reference")).not_to_be_empty()
    expect(page.locator("#e-seconds")).to_be_empty()
    page.get_by_label("Image to start from").set_input_files(png(tmp_path / "start.png"))
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#watch-status")).to_contain_text(I2V)
    job = page.locator("#watch-status").inner_text().rsplit(" · ", 1)[1]
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#watch-status")).to_contain_text("cancelled", timeout=30_000)
    assert job


def test_create_watch_play_find_and_delete_a_video(page: Page, served: Console) -> None:
    sign_in(page, served.base, served.tenant_key)
    create(page, HOSTILE, Steps="40", **{"Preview every (steps)": "4"})
    expect(page.get_by_role("heading", name="Watch")).to_be_visible()
    expect(page.locator("#watch-prompt")).to_have_text(HOSTILE)  # text, not markup
    bar = page.locator("#watch-steps")
    page.wait_for_function("() => document.getElementById('watch-steps').value >= 3", timeout=30_000)
    expect(page.locator("#watch-expert")).not_to_have_text("–")
    shown = max(shown_sequences(page))
    resumed: list[str | None] = []
    page.on(
        "request", lambda r: resumed.append(r.headers.get("last-event-id")) if "/events" in r.url else None
    )
    page.reload()  # mid-denoising: the stream resumes after the last event it showed
    expect(page.locator("#watch-status")).to_contain_text("completed", timeout=60_000)
    sequences = shown_sequences(page)
    assert sequences == list(range(1, len(sequences) + 1))  # none twice, none missing
    assert resumed
    assert int(resumed[0] or 0) >= shown
    assert bar.get_attribute("max") == "40"
    assert page.locator("#watch-previews img").count() >= 1
    plays(page, "#watch-video")
    assert page.locator("img[src='x']").count() == 0

    page.get_by_role("link", name="Library").click()
    video_id = page.locator("#watch-status").inner_text().rsplit(" · ", 1)[1]
    card = page.locator(f"li.card[data-id='{video_id}']")
    expect(card.locator("p.prompt")).to_have_text(HOSTILE)
    expect(card.locator("img.poster")).to_be_visible()
    assert card.locator("img.poster").evaluate("(img) => img.complete && img.naturalWidth > 0")
    card.get_by_role("button", name="Play").click()
    plays(page, f"li.card[data-id='{video_id}'] video")

    card.get_by_role("button", name="Remix").click()
    card.get_by_label("New prompt").fill("a fox, at night")
    card.locator("form").get_by_role("button", name="Remix").click()
    expect(page.locator("#watch-prompt")).to_have_text("a fox, at night")
    expect(page.locator("#watch-status")).not_to_contain_text(video_id)
    page.get_by_role("link", name="Library").click()

    page.get_by_label("Filter by state").select_option("failed")
    expect(card).to_have_count(0)
    page.get_by_label("Filter by state").select_option("completed")
    card.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete it").click()
    expect(page.locator("#library-status")).to_contain_text(f"Deleted {video_id}")
    expect(card).to_have_count(0)
    gone = httpx.get(
        f"{served.base}/v1/videos/{video_id}", headers={"authorization": f"Bearer {served.tenant_key}"}
    )
    assert gone.status_code == 404


def test_search_by_words_and_more_like_this(page: Page, served: Console) -> None:
    video_id = made_and_indexed(served, "a red fox running through snow")
    sign_in(page, served.base, served.tenant_key)
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Describe what you look for").fill("a red fox running through snow")
    page.get_by_role("button", name="Search", exact=True).click()
    found = page.locator(f"#search-list li.card[data-id='{video_id}']")
    expect(found).to_be_visible()
    expect(found.locator("img.poster")).to_be_visible()
    found.get_by_role("button", name="More like this").click()
    expect(page.locator("#search-status")).to_contain_text("videos like")
    expect(page.locator("#search-list li.card").first).to_be_visible()


def test_an_admin_key_sees_the_operator_view_and_a_tenants_key_does_not(page: Page, served: Console) -> None:
    sign_in(page, served.base, served.tenant_key)
    expect(page.get_by_role("link", name="Operator")).to_be_hidden()
    page.goto(served.base + "/#operator")
    expect(page.get_by_role("heading", name="Create a video")).to_be_visible()
    expect(page.get_by_role("heading", name="Operator")).to_be_hidden()
    tenant = {"authorization": f"Bearer {served.tenant_key}"}
    for method, path in (
        ("GET", "/v1/admin/fleet"),
        ("GET", "/v1/admin/dead_letters"),
        ("POST", "/v1/admin/dead_letters/anything/requeue"),
    ):
        assert httpx.request(method, served.base + path, headers=tenant).status_code == 403

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, served.base, served.admin_key)
    page.get_by_role("link", name="Operator").click()
    expect(page.get_by_role("heading", name="Operator")).to_be_visible()
    model = page.locator(f"#op-models tr[data-model='{T2V}']")
    expect(model).to_contain_text("embedded")  # its worker
    expect(page.locator("#op-tenants tr[data-tenant='acme']")).to_be_visible()
    expect(page.locator("#op-tenants tr[data-tenant='ops'] td").first).to_have_text("yes")  # admin
    expect(page.locator("#op-dead")).to_contain_text("No dead letters.")
    with page.expect_request(lambda r: r.url.endswith("/v1/admin/fleet"), timeout=10_000):
        pass  # it refreshes by itself


def test_the_first_paint_is_under_a_second(page: Page, served: Console) -> None:
    """On the embedded server here: the first contentful paint, and the sign-in form ready to type in."""
    page.goto(served.base + "/")
    expect(page.get_by_label("API key")).to_be_visible()
    timings = page.evaluate(
        """() => ({
            paint: performance.getEntriesByName("first-contentful-paint")[0].startTime,
            ready: performance.getEntriesByName("moviola-ready")[0].startTime,
            bytes: performance.getEntriesByType("resource").reduce((n, r) => n + r.encodedBodySize, 0),
        })"""
    )
    print(
        f"first contentful paint {timings['paint']:.0f} ms, sign-in ready {timings['ready']:.0f} ms, "
        f"{timings['bytes'] / 1024:.1f} KiB after the page"
    )
    assert timings["paint"] < 1000
    assert timings["ready"] < 1000


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button, a[href], video")]
    .filter((c) => c.checkVisibility())
    .filter((c) => !(c.labels?.length || c.getAttribute("aria-label") || c.textContent.trim()))
    .map((c) => c.outerHTML.slice(0, 80))"""


def test_every_control_is_labelled_and_reachable_from_the_keyboard(page: Page, served: Console) -> None:
    page.goto(served.base + "/")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(served.admin_key)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    page.keyboard.type("a lighthouse at dusk")
    for _ in range(40):
        if page.evaluate("document.activeElement.id") == "create-submit":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#watch-status")).to_contain_text("completed", timeout=60_000)
    for name in ("Watch", "Library", "Search", "Operator", "Create"):
        page.get_by_role("link", name=name).focus()
        page.keyboard.press("Enter")
        expect(page.locator("nav a[aria-current='page']")).to_have_text(name)
        if name == "Library":
            expect(page.locator("#library-list li.card").first).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], name


def _sse(*events: tuple[int, str, dict[str, object]]) -> str:
    return "".join(
        f"id: {n}\nevent: {kind}\ndata: {json.dumps({'sequence': str(n), kind_field(kind): body})}\n\n"
        for n, kind, body in events
    )


def kind_field(kind: str) -> str:
    head, *rest = kind.split("_")
    return head + "".join(word.title() for word in rest)


def test_a_broken_stream_resumes_and_a_lost_workers_job_shows_its_attempt(
    page: Page, served: Console
) -> None:
    """The stream as the server would send it for a job whose worker was lost (scripted: the embedded
    server has no worker to lose), broken off twice: the page asks again after the last event it had."""
    answers = [
        _sse((1, "queued", {"position": 3}), (2, "started", {"worker": "w1", "attempt": 1})),
        _sse(
            (3, "phase_changed", {"phase": "PHASE_DENOISING"}),
            (4, "progress", {"step": 1, "totalSteps": 4, "expert": "EXPERT_HIGH_NOISE", "remaining": "9s"}),
            (5, "started", {"worker": "w2", "attempt": 2}),
            (6, "progress", {"step": 2, "totalSteps": 4, "expert": "EXPERT_HIGH_NOISE", "remaining": "3s"}),
        ),
    ]
    asked: list[str | None] = []

    def stream(route: Route) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        body = answers[len(asked) - 1] if len(asked) <= len(answers) else ""
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route("**/v1/videos/scripted/events", stream)
    sign_in(page, served.base, served.tenant_key)
    job = {"job": {"id": "scripted", "prompt": "p", "model": T2V}, "last": 0, "status": "queued"}
    page.evaluate(
        f"sessionStorage.setItem('moviola.watch', JSON.stringify({json.dumps(job | {'log': [], 'previews': []})}))"
    )
    page.goto(served.base + "/#watch")
    expect(page.locator("#watch-step-text")).to_have_text("step 2 of 4", timeout=15_000)
    expect(page.locator("#watch-attempt")).to_have_text("2 on w2")
    expect(page.locator("#watch-remaining")).to_have_text("3 s of denoising")
    expect(page.locator("#watch-log")).to_contain_text("#1 queued at position 3")
    expect(page.locator("#watch-log")).to_contain_text("the worker before was lost")
    assert shown_sequences(page) == [1, 2, 3, 4, 5, 6]
    assert asked[:2] == [None, "2"]
    page.unroute("**/v1/videos/scripted/events")
