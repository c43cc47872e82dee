"""docs/migrating-from-sora.md's Python, run block by block against a real embedded server with the real SDK.

The server serves the tiny twins under the names the page uses (``--model-alias``), with an auth
file and a webhook secret; the page's blocks share one namespace, as a reader's session would,
and what they leave there is checked after.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import openai
import pytest
from test_webhooks import SECRET, Receiver

from moviola.auth import keys
from moviola.testing import ServerProcess, free_port

PAGE = Path(__file__).resolve().parent.parent / "docs" / "migrating-from-sora.md"
#: What the page names and what stands for it here: the server, the receiver, a shorter extension.
DOCS_URL, HOOK_URL = "http://localhost:8080/v1", "https://hooks.example.com/moviola"
#: The page's model ids, served as their tiny twins; sora-2 is the default (text-to-video, as Wan2.2-A14B).
ALIASES = ("wan2.2-ti2v-5b=tiny-wan2.2-ti2v", "wan2.1-t2v-1.3b=tiny-wan2.1-t2v")


@pytest.fixture(scope="module")
def served(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The server's REST base URL and a key of tenant acme."""
    folder = tmp_path_factory.mktemp("migrating")
    auth_file = folder / "auth.json"
    key = keys.create_key(auth_file, "acme")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    args += ["--auth-file", str(auth_file), "--webhook-secret", SECRET, "--webhook-allow-host", "127.0.0.1"]
    args += [
        "--model",
        "tiny-wan2.2-t2v",
        "--also-serve",
        "tiny-wan2.2-ti2v",
        "--also-serve",
        "tiny-wan2.1-t2v",
    ]
    with ServerProcess([*args, *(a for alias in ALIASES for a in ("--model-alias", alias))]):
        yield f"http://127.0.0.1:{port}/v1", key


def _frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r") as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.timeout(240)
def test_the_pages_python_runs_as_written(
    served: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = served
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 12  # one at least for each call
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOVIOLA_API_KEY", key)
    monkeypatch.setenv("MOVIOLA_WEBHOOK_SECRET", SECRET)
    receiver = Receiver()
    page: dict[str, Any] = {}
    try:
        for number, block in enumerate(blocks, 1):
            code = block.replace(DOCS_URL, url).replace(HOOK_URL, receiver.url)
            code = code.replace('seconds="4"', 'seconds="1"').replace('"seconds": "4"', '"seconds": "1"')
            exec(compile(code, f"{PAGE.name}, python block {number}", "exec"), page)
        assert receiver.completed.wait(60), receiver.answers
        delivered = next(body for _, body in receiver.received if b'"job.completed"' in body)
        headers = next(h for h, body in receiver.received if body == delivered)
        hooked = page["on_delivery"](delivered, headers)
        mine = [json.loads(body) for _, body in receiver.received if page["hooked"].id.encode() in body]
        assert {event["type"] for event in mine} == {"job.completed"}  # the list the SDK sent: not started
    finally:
        receiver.close()
    client: openai.OpenAI = page["client"]
    try:
        _check(client, page, hooked)
    finally:
        client.close()


def _check(client: openai.OpenAI, page: dict[str, Any], hooked: Any) -> None:
    poll = client.videos.poll

    video = page["video"]
    assert (video.status, video.model, str(video.size)) == ("completed", "sora-2", "224x128")
    assert video.model_dump()["moviola_model"] == "tiny-wan2.2-t2v"
    assert video.seconds == "1.0625"  # 17 frames at 16 fps: what was made
    assert _frames(Path("fox.mp4").read_bytes()) == 17
    again = client.videos.create(
        model="sora-2",
        prompt="a red fox running through snow",
        size="1280x720",
        extra_body={"seed": 7, "negative_prompt": "blurry, text"},
        extra_headers={"Idempotency-Key": "order-17"},
    )
    assert again.id == page["ordered"].id  # sent again with its key: the same video, not a second
    assert page["remixed"].remixed_from_video_id == video.id
    assert page["stopped"].error.code == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(page["queued"].id)  # deleted

    source, continued = page["source"], poll(page["continued"].id)
    assert (continued.status, continued.model_dump()["extended_from_video_id"]) == ("completed", source.id)
    assert continued.model_dump()["num_frames"] == source.model_dump()["num_frames"] + 25 - 1  # 1 s at 24 fps
    assert poll(page["uploaded"].id).status == "completed"
    inked = poll(page["inked"].id)
    assert inked.status == "completed"
    assert (inked.model_dump()["edited_from_video_id"], inked.model_dump()["edit_strength"]) == (
        page["edited"].id,
        0.5,
    )
    assert page["edited"].model_dump()["edit_strength"] == 0.6
    assert page["character"].id.startswith("char_")
    assert page["cast"].status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.videos.get_character(page["character"].id)  # deleted
    assert page["mp4"][4:8] == b"ftyp"  # the async client's download
    assert page["refused"]["param"] == "seconds"
    assert page["refused"]["message"].startswith("seconds: must be above 0 and at most")
    assert hooked is not None  # the signature verified, the video read
    assert hooked.id == page["hooked"].id
    listed = [v.id for v in client.videos.list(order="asc", limit=2)]  # the SDK pages through them all
    assert listed[0] == video.id
    assert len(listed) == len(set(listed)) >= 10


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_link_of_the_page_reaches_a_heading() -> None:
    text = PAGE.read_text()
    links = re.findall(r"\]\(([\w.-]*\.md)?#([\w-]+)\)", text)
    assert ("api.md", "long-videos") in links
    for page, anchor in links:
        target = PAGE.parent / page if page else PAGE
        assert anchor in _anchors(target.read_text()), f"{page}#{anchor}"
