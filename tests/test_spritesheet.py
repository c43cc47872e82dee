"""Spritesheets: a JPEG grid of evenly spaced frames, made when a video is stored and kept beside it.

Real servers on local disk and on a real S3 server (SeaweedFS), reached as callers reach them:
the ``openai`` SDK's ``download_content(variant="spritesheet")``, gRPC DownloadVideo and the CLI.
The grid is docs/api.md's ("Spritesheets").
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from harness.s3 import S3Server
from helpers import moviola
from PIL import Image

from moviola.client import Client, RequestOptions
from moviola.client.errors import NotFound
from moviola.errors import NotFound as StorageNotFound
from moviola.mp4 import encode_spritesheet, sheet_layout
from moviola.storage.base import Variant
from moviola.storage.local import LocalStorage
from moviola.storage.s3 import S3Storage
from moviola.testing import ServerProcess, free_port

#: 1 s at the tiny models' 16 fps: 17 frames, so 5 columns by 4 rows of 64x64 tiles.
REST_SMALL: dict[str, Any] = {"size": "64x64", "seconds": "1"}
REST_SHEET = (5 * 64, 4 * 64)
#: 9 frames: 3 by 3 tiles of 64x64.
GRPC_SMALL: RequestOptions = {"num_frames": 9, "num_inference_steps": 2, "width": 64, "height": 64}
OLD = "stored before spritesheets existed"
#: Every call of the SDK warns that OpenAI's hosted API shuts down: the reason the REST face exists.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@dataclass
class Served:
    """A real server, and where its storage keeps a job's spritesheet."""

    server: ServerProcess
    base_url: str
    #: The stored spritesheet's bytes; None when there is none.
    stored_sheet: Callable[[str], bytes | None]
    #: Remove it, as if the video was stored before spritesheets existed.
    drop_sheet: Callable[[str], None]

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _on_disk(folder: Path) -> tuple[Callable[[str], bytes | None], Callable[[str], None]]:
    def stored(job_id: str) -> bytes | None:
        path = folder / f"{job_id}.spritesheet.jpg"
        return path.read_bytes() if path.exists() else None

    return stored, lambda job_id: (folder / f"{job_id}.spritesheet.jpg").unlink()


def _on_s3(s3: S3Server, prefix: str) -> tuple[Callable[[str], bytes | None], Callable[[str], None]]:
    bucket = s3.client()

    def stored(job_id: str) -> bytes | None:
        key = f"{prefix}/{job_id}.spritesheet.jpg"
        if "Contents" not in bucket.list_objects_v2(Bucket="videos", Prefix=key):
            return None
        reply = bucket.get_object(Bucket="videos", Key=key)
        assert reply["ContentType"] == "image/jpeg"
        data: bytes = reply["Body"].read()
        return data

    def drop(job_id: str) -> None:
        bucket.delete_object(Bucket="videos", Key=f"{prefix}/{job_id}.spritesheet.jpg")

    return stored, drop


@pytest.fixture(scope="module", params=["local", "s3"])
def served(
    request: pytest.FixtureRequest, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    data, port = tmp_path_factory.mktemp("data"), free_port()
    args = ["--data-dir", str(data), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        stored, drop = _on_s3(s3, "sheets")
        process = ServerProcess([*args, "--storage-url", "s3://videos/sheets"], env=s3.client_env())
    else:
        stored, drop = _on_disk(data / "videos")
        process = ServerProcess(args)
    with process:
        yield Served(process, f"http://127.0.0.1:{port}/v1", stored, drop)


def tiles(sheet: Image.Image, count: int, size: int = 64) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    """The sheet's first ``count`` tiles, left to right and top to bottom, as float arrays."""
    columns = sheet.width // size
    return [
        np.asarray(sheet.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)), dtype=np.float64)
        for r, c in (divmod(i, columns) for i in range(count))
    ]


def test_the_layout_is_the_documented_grid_of_evenly_spaced_frames() -> None:
    wan = sheet_layout(81, 1280, 720)
    assert (wan.columns, wan.rows, wan.tile_width, wan.tile_height, wan.size) == (5, 5, 256, 144, (1280, 720))
    assert wan.frames[0] == 0 and wan.frames[-1] == 80 and len(wan.frames) == 25  # noqa: PT018
    assert sheet_layout(17, 832, 480).size == (5 * 256, 4 * 148)
    assert sheet_layout(9, 64, 64).size == (192, 192)  # small videos are never enlarged
    assert sheet_layout(1, 64, 64).frames == (0,)

    # 30 frames, each one flat grey level: the tiles show frames round(i * 29 / 24), in order.
    levels = np.arange(30, dtype=np.uint8) * 8
    frames = np.broadcast_to(levels[:, None, None, None], (30, 36, 64, 3)).copy()
    sheet = Image.open(io.BytesIO(encode_spritesheet(frames)))
    assert sheet.format == "JPEG"
    assert sheet.size == (5 * 64, 5 * 36)
    shown = [
        float(np.asarray(sheet.crop((c * 64, r * 36, (c + 1) * 64, (r + 1) * 36))).mean())
        for r, c in (divmod(i, 5) for i in range(25))
    ]
    expected = [float(levels[round(i * 29 / 24)]) for i in range(25)]
    assert np.allclose(shown, expected, atol=3), (shown, expected)


def test_the_sdk_downloads_the_spritesheet_grpc_the_same_and_deleting_the_video_deletes_it(
    served: Served,
) -> None:
    sdk = served.sdk()
    video = sdk.videos.create_and_poll(prompt="a fox", **REST_SMALL, extra_body={"steps": 2, "seed": 7})
    assert video.status == "completed"
    content = sdk.videos.download_content(video.id, variant="spritesheet")
    assert content.response.headers["content-type"] == "image/jpeg"
    data = content.read()
    sheet = Image.open(io.BytesIO(data))
    assert sheet.format == "JPEG"
    assert sheet.size == REST_SHEET
    made = tiles(sheet.convert("RGB"), 20)
    shown, empty = made[:17], made[17:]
    assert max(np.abs(tile - shown[0]).mean() for tile in shown[1:]) > 2, "the tiles are one frame repeated"
    assert all(tile.mean() < 8 for tile in empty)  # the cells past the last frame are black
    assert served.stored_sheet(video.id) == data  # made once, when the video was stored

    with Client(served.server.address, timeout=30) as client:
        assert b"".join(client.download(video.id, spritesheet=True)) == data

    sdk.videos.delete(video.id)
    assert served.stored_sheet(video.id) is None
    with pytest.raises(openai.NotFoundError):
        sdk.videos.download_content(video.id, variant="spritesheet")


def test_grpc_and_the_cli_save_the_spritesheet(served: Served, tmp_path: Path) -> None:
    with Client(served.server.address, timeout=30) as client:
        done = list(client.generate("a fox", **GRPC_SMALL))[-1]
        assert done.WhichOneof("kind") == "completed", done
        sheet = b"".join(client.download(done.job_id, spritesheet=True))
    assert Image.open(io.BytesIO(sheet)).size == (192, 192)  # 9 frames: 3x3
    assert sheet == served.stored_sheet(done.job_id)

    out = tmp_path / "sheet.jpg"
    saved = moviola(
        "jobs", "download", done.job_id, "--server", served.server.address, "-o", str(out), "--spritesheet"
    )
    assert saved.returncode == 0, saved.stderr
    assert out.read_bytes() == sheet
    both = moviola(
        "jobs",
        "download",
        done.job_id,
        "--server",
        served.server.address,
        "-o",
        str(out),
        "--thumbnail",
        "--spritesheet",
    )
    assert both.returncode == 2
    assert "choose one" in both.stderr


def test_a_video_stored_before_spritesheets_existed_has_none_but_keeps_its_video(served: Served) -> None:
    sdk = served.sdk()
    video = sdk.videos.create_and_poll(prompt="an old fox", **REST_SMALL, extra_body={"steps": 1})
    served.drop_sheet(video.id)
    with pytest.raises(openai.NotFoundError, match=OLD):
        sdk.videos.download_content(video.id, variant="spritesheet")
    with Client(served.server.address, timeout=30) as client:
        with pytest.raises(NotFound, match=OLD):
            list(client.download(video.id, spritesheet=True))
        assert b"".join(client.download(video.id))[4:8] == b"ftyp"
        assert b"".join(client.download(video.id, thumbnail=True))[:3] == b"\xff\xd8\xff"


def test_local_storage_keeps_the_spritesheet_with_the_video_and_expires_it_with_it(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    stored = storage.put("job", b"video", b"poster", b"sheet")
    assert storage.read(stored.uri, Variant.SPRITESHEET) == b"sheet"
    older = storage.put("older", b"video", b"poster")  # as stored before spritesheets existed
    with pytest.raises(StorageNotFound):
        storage.read(older.uri, Variant.SPRITESHEET)
    assert storage.delete_before(time.time() + 60) == 2
    assert list(tmp_path.iterdir()) == []


def test_s3_storage_keeps_the_spritesheet_with_the_video_and_expires_it_with_it(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.client_env().items():
        monkeypatch.setenv(key, value)
    storage = S3Storage("s3://videos/kept", endpoint=s3.endpoint)
    stored = storage.put("job", b"video", b"poster", b"sheet")
    assert storage.read(stored.uri, Variant.SPRITESHEET) == b"sheet"
    assert storage.delete_before(time.time() + 60) == 1
    assert "Contents" not in s3.client().list_objects_v2(Bucket="videos", Prefix="kept/")
