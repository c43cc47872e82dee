"""The browser console's longer workflows in Debian's chromium: the library (paging, filters, download,
extend), a real dead letter requeued from the operator view, a LoRA adapter picked in the form.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from console_pages import I2V, T2V, Console, completed_video, sign_in
from playwright.sync_api import Page, expect
from processes import worker

from moviola.client import Client
from moviola.testing import ServerProcess, free_port
from moviola.v1 import job_pb2 as pb


def test_the_library_pages_filters_by_model_downloads_and_extends(
    page: Page, served: Console, tmp_path: Path
) -> None:
    made = [completed_video(served, served.admin_key, f"library video {i}") for i in range(13)]
    sign_in(page, served.base, served.admin_key)
    page.get_by_role("link", name="Library").click()
    cards = page.locator("#library-list li.card")
    expect(cards).to_have_count(12)
    shown = cards.evaluate_all("(items) => items.map((i) => i.dataset.id)")
    assert shown == made[::-1][:12]  # newest first, one page
    page.get_by_role("button", name="Older").click()
    expect(page.locator(f"li.card[data-id='{made[0]}']")).to_be_visible()
    page.get_by_role("button", name="Newer").click()
    expect(page.locator(f"li.card[data-id='{made[-1]}']")).to_be_visible()

    page.get_by_label("Filter by model").select_option(I2V)
    expect(page.locator(f"li.card[data-id='{made[-1]}']")).to_have_count(0)
    page.get_by_label("Filter by model").select_option(T2V)
    card = page.locator(f"li.card[data-id='{made[-1]}']")
    expect(card).to_be_visible()

    with page.expect_download() as downloading:
        card.get_by_role("button", name="Download").click()
    saved = tmp_path / "video.mp4"
    downloading.value.save_as(saved)
    assert saved.read_bytes()[4:8] == b"ftyp"  # an MP4, whole
    stored = httpx.get(
        f"{served.base}/v1/videos/{made[-1]}/content", headers={"authorization": f"Bearer {served.admin_key}"}
    )
    assert saved.read_bytes() == stored.content

    card.get_by_role("button", name="Extend").click()
    card.get_by_label("What happens next").fill("and then it snows")
    card.get_by_label("Seconds more").fill("1")
    card.locator("form").get_by_role("button", name="Extend").click()
    expect(page.locator("#watch-prompt")).to_have_text("and then it snows")
    expect(page.locator("#watch-status")).to_contain_text("completed", timeout=60_000)
    extended = page.locator("#watch-status").inner_text().rsplit(" · ", 1)[1]
    with httpx.Client(base_url=served.base, headers={"authorization": f"Bearer {served.admin_key}"}) as http:
        shown_video = http.get(f"/v1/videos/{extended}").json()
    assert shown_video["extended_from_video_id"] == made[-1]
    assert shown_video["num_frames"] == 5 + 17 - 1  # 1 s more at 16 fps, joined at one frame


def test_a_dead_letter_is_requeued_from_the_operator_view(page: Page, redis_url: str, tmp_path: Path) -> None:
    """Redis mode: a job that kills its worker twice lands in the dead letters; the page requeues it."""
    port = free_port()
    args = ["--lease", "1", "--max-attempts", "2", "--poison-prompt", "poison"]
    with (
        ServerProcess(["--redis-url", redis_url, "--accept-without-workers", "--http-port", str(port)]) as gw,
        Client(gw.address) as client,
    ):
        job = client.submit("poison", model=T2V, num_inference_steps=1)
        for attempt in range(2):
            killed = worker(redis_url, tmp_path, f"w{attempt}", "--model", T2V, *args).start()
            assert killed.wait(60) != 0  # the job killed it
        survivor = worker(redis_url, tmp_path, "survivor", "--model", T2V, *args).start()
        try:
            assert list(client.watch(job.id))[-1].failed.code == pb.FAILURE_CODE_DEAD_LETTERED
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("link", name="Library").click()  # the watch page says which attempt ran where
            page.locator(f"li.card[data-id='{job.id}']").get_by_role("button", name="Watch").click()
            expect(page.locator("#watch-attempt")).to_have_text("2 on w1")
            expect(page.locator("#watch-status")).to_contain_text("failed")
            page.get_by_role("link", name="Operator").click()
            row = page.locator("#op-dead tr", has_text=job.id)
            expect(row).to_contain_text("2")  # attempts
            row.get_by_role("button", name=f"Requeue {job.id}").click()
            expect(page.locator("#operator-done")).to_contain_text(f"Requeued {job.id}")
            expect(page.locator("#op-dead tr", has_text=job.id)).to_have_count(0)
            letters = httpx.get(f"http://127.0.0.1:{port}/v1/admin/dead_letters", timeout=30).json()
            assert job.id not in [letter["video_id"] for letter in letters["data"]]
        finally:
            survivor.stop()


def test_a_lora_adapter_is_picked_in_the_form_and_a_bad_scale_is_shown_at_it(
    page: Page, served: Console
) -> None:
    sign_in(page, served.base, served.tenant_key)
    page.goto(page.url.split("#")[0] + "#create")
    page.get_by_label("Model", exact=True).select_option(T2V)
    expect(page.get_by_label("LoRA adapter")).to_be_visible()
    page.get_by_label("Prompt", exact=True).fill("a fox in ink")
    page.get_by_label("Steps", exact=True).fill("2")
    page.get_by_label("LoRA adapter").select_option("style")
    page.get_by_label("Adapter scale").fill("99")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#e-loras")).not_to_be_empty()  # the server's refusal, at the field it names
    expect(page.get_by_label("LoRA adapter")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Adapter scale").fill("0.5")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#watch-status")).to_contain_text("completed", timeout=60_000)
    video_id = page.locator("#watch-status").inner_text().rsplit(" · ", 1)[1]
    shown = httpx.get(
        f"{served.base}/v1/videos/{video_id}", headers={"authorization": f"Bearer {served.tenant_key}"}
    ).json()
    assert shown["loras"] == [{"name": "style", "scale": 0.5}]
