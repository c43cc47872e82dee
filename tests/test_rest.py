"""The REST face through the real ``openai`` SDK (3.51.0), unchanged, against a real embedded server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import openai
import pytest
from PIL import Image

from moviola.auth import keys
from moviola.rest import sse
from moviola.testing import ServerProcess, free_port

#: The SDK types size and seconds as Sora's literals; it sends whatever it is given.
SMALL: dict[str, Any] = {"size": "64x64", "seconds": "1"}
#: Every call of the SDK warns that OpenAI's hosted API shuts down: the reason this face exists.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture(scope="module")
def rest(
    cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("rest")
    auth_file = folder / "auth.json"
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    keys.set_limits(auth_file, "globex", {"rate": 0.2, "burst": 1})
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    with ServerProcess([*args, "--auth-file", str(auth_file), "--also-serve", "tiny-wan2.1-t2v"]) as server:
        yield server, f"http://127.0.0.1:{port}/v1", made
    for client in OPENED:
        client.close()


OPENED: list[openai.OpenAI] = []


def sdk(
    rest: tuple[ServerProcess, str, dict[str, str]], tenant: str = "acme", key: str = ""
) -> openai.OpenAI:
    """The SDK as a migrating caller configures it: only base_url and api_key change (no retries here)."""
    client = openai.OpenAI(base_url=rest[1], api_key=key or rest[2][tenant], max_retries=0)
    OPENED.append(client)
    return client


def test_create_and_poll_then_download_a_video_the_sdk_parses(
    rest: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    client = sdk(rest)
    video = client.videos.create_and_poll(
        prompt="a fox", model="tiny-wan2.2-t2v", **SMALL, extra_body={"steps": 2, "seed": 7}
    )
    assert video.status == "completed"
    assert video.progress == 100
    assert str(video.size) == "64x64"
    assert video.completed_at is not None and video.completed_at >= video.created_at  # noqa: PT018
    mp4 = client.videos.download_content(video.id).read()
    with av.open(io.BytesIO(mp4), mode="r") as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 17  # 1 s at the model's 16 fps, as 4k+1 frames
    assert (frames[0].width, frames[0].height) == (64, 64)
    poster = client.videos.download_content(video.id, variant="thumbnail").read()
    assert poster[:3] == b"\xff\xd8\xff"  # a JPEG
    again = client.videos.retrieve(video.id)
    assert again.id == video.id and again.status == "completed"  # noqa: PT018


def test_list_pages_remix_and_delete(rest: tuple[ServerProcess, str, dict[str, str]]) -> None:
    client = sdk(rest)
    made = [client.videos.create(prompt=f"page {i}", **SMALL, extra_body={"steps": 1}).id for i in range(3)]
    first = client.videos.list(limit=2)
    assert [v.id for v in first.data] == made[::-1][:2]  # newest first
    assert first.has_more
    second = client.videos.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == made[0]
    oldest_first = [v.id for v in client.videos.list(limit=100, order="asc").data]
    assert oldest_first.index(made[0]) < oldest_first.index(made[2])
    done = client.videos.poll(made[0])
    remixed = client.videos.remix(done.id, prompt="the same, at night")
    assert remixed.remixed_from_video_id == done.id
    assert remixed.prompt == "the same, at night"
    finished = client.videos.poll(remixed.id)
    assert finished.status == "completed"
    assert client.videos.delete(finished.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(finished.id)
    with pytest.raises(openai.NotFoundError):  # another tenant's video is not there
        sdk(rest, "globex").videos.retrieve(done.id)


def test_errors_are_the_sdks_own(rest: tuple[ServerProcess, str, dict[str, str]]) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        sdk(rest).videos.create(prompt="x", size="64by64")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "size"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as long:
        sdk(rest).videos.create(prompt="x", model="tiny-wan2.2-t2v", seconds="60")  # type: ignore[arg-type]
    assert long.value.body["param"] == "seconds"  # type: ignore[index]
    with pytest.raises(
        openai.ConflictError, match="webhook-secret"
    ):  # FAILED_PRECONDITION: none to sign with
        sdk(rest).videos.create(prompt="x", **SMALL, extra_body={"webhook_url": "https://example.com/hook"})
    with pytest.raises(openai.AuthenticationError):
        sdk(rest, key="mvk_wrong").videos.list()
    globex = sdk(rest, "globex")
    globex.videos.create(prompt="one", **SMALL, extra_body={"steps": 1})
    with pytest.raises(openai.RateLimitError) as limited:
        globex.videos.create(prompt="two", **SMALL, extra_body={"steps": 1})
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_events_stream_as_sse_and_resume_after_last_event_id(
    rest: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    client = sdk(rest)
    video = client.videos.create(prompt="watched", **SMALL, extra_body={"steps": 3})
    headers = {"authorization": f"Bearer {rest[2]['acme']}"}
    url = f"{rest[1]}/videos/{video.id}/events"

    def read(extra: dict[str, str]) -> list[tuple[int, str, dict[str, object]]]:
        seen = []
        request = urllib.request.Request(url, headers={**headers, **extra})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            block: dict[str, str] = {}
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(": ")
                    block[name] = value
                elif block:
                    seen.append((int(block["id"]), block["event"], json.loads(block["data"])))
                    block = {}
        return seen

    events = read({})
    assert events[-1][1] == "completed"
    assert [e[1] for e in events].count("progress") == 3
    assert [e[0] for e in events] == list(range(1, len(events) + 1))
    resumed = read({"last-event-id": str(events[2][0])})
    assert resumed == events[3:]


def test_the_served_and_committed_openapi_documents_are_current(
    rest: tuple[ServerProcess, str, dict[str, str]],
) -> None:
    root = Path(__file__).resolve().parent.parent
    check = subprocess.run(
        [sys.executable, "scripts/openapi.py", "--check"], cwd=root, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    with urllib.request.urlopen(rest[1].removesuffix("/v1") + "/openapi.json", timeout=30) as response:
        served = json.load(response)
    assert served == json.loads((root / "docs" / "openapi.json").read_text())  # no key needed for it


def test_the_readmes_curl_commands_work(
    rest: tuple[ServerProcess, str, dict[str, str]], tmp_path: Path
) -> None:
    """The README's REST block, verbatim but for the port: create, look, download."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(
        b for b in re.findall(r"^```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL) if "# REST" in b
    )
    create, look, download = [line for line in block.splitlines() if line.startswith("curl")]
    env = {**os.environ, "MOVIOLA_API_KEY": rest[2]["acme"]}

    def run(line: str, **extra: str) -> str:
        command = line.replace("http://localhost:8080/v1", rest[1])
        done = subprocess.run(
            ["sh", "-c", command],
            env={**env, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    video = json.loads(run(create))
    assert video["status"] == "queued"
    assert video["size"] == "128x128"
    sdk(rest).videos.poll(video["id"])  # until it ends
    assert json.loads(run(look, VIDEO_ID=video["id"]))["status"] == "completed"
    run(download, VIDEO_ID=video["id"])
    with av.open(str(tmp_path / "fox.mp4"), mode="r") as container:
        assert container.streams.video[0].codec_context.width == 128


def test_sse_carries_previews_when_asked(rest: tuple[ServerProcess, str, dict[str, str]]) -> None:
    client = sdk(rest)
    video = client.videos.create(prompt="previewed", **SMALL, extra_body={"steps": 2, "preview_every": 1})
    request = urllib.request.Request(
        f"{rest[1]}/videos/{video.id}/events", headers={"authorization": f"Bearer {rest[2]['acme']}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        lines = [raw.decode() for raw in response]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    previews = [d["progress"]["preview"] for d in data if "progress" in d]
    assert len(previews) == 2
    for preview in previews:
        with Image.open(io.BytesIO(base64.b64decode(preview["image"]))) as image:
            assert image.format == "JPEG"
            assert image.size == (preview["width"], preview["height"]) == (64, 64)


async def test_an_idle_stream_gets_keepalive_comments_and_loses_no_event() -> None:
    released = asyncio.Event()

    async def slow() -> AsyncIterator[int]:
        yield 1
        await released.wait()
        yield 2

    seen: list[int | None] = []
    async for item in sse.with_keepalive(slow(), every=0.01):
        seen.append(item)
        if seen.count(None) == 2:
            released.set()
    assert seen[0] == 1
    assert seen[-1] == 2
    assert seen[1:-1]
    assert all(item is None for item in seen[1:-1])
