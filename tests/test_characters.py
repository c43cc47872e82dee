"""Characters through the real ``openai`` SDK (and gRPC), against a real embedded server.

A character is a reference image taken from an uploaded video; a create request that names it
(``character_id``) is conditioned on that image, on a model that takes one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from moviola.auth import keys
from moviola.client import Client, InvalidArgument, NotFound
from moviola.errors import InvalidRequest
from moviola.mp4 import encode_mp4
from moviola.testing import ServerProcess, free_port
from moviola.uploads import VideoLimits, decode
from moviola.v1 import job_pb2 as pb
from moviola.validation import MAX_VIDEO_BYTES

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
#: The default model takes text only; its image-to-video twin needs an image.
TEXT_ONLY, IMAGE_TAKING = "tiny-wan2.2-t2v", "tiny-wan2.2-i2v"
SMALL: dict[str, Any] = {"size": "64x64", "seconds": "1"}


class Served:
    def __init__(self, server: ServerProcess, base_url: str, made: dict[str, str], folder: Path) -> None:
        self.server, self.base_url, self.keys, self.folder = server, base_url, made, folder
        self.opened: list[openai.OpenAI] = []

    def sdk(self, tenant: str = "acme") -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.base_url, api_key=self.keys[tenant], max_retries=0)
        self.opened.append(client)
        return client


@pytest.fixture(scope="module")
def served(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("characters")
    auth_file = folder / "auth.json"
    made = {name: keys.create_key(auth_file, name) for name in ("acme", "globex")}
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    with ServerProcess([*args, "--auth-file", str(auth_file), "--also-serve", IMAGE_TAKING]) as server:
        result = Served(server, f"http://127.0.0.1:{port}/v1", made, folder)
        yield result
        for client in result.opened:
            client.close()


def clip(frames: int = 17, width: int = 96, height: int = 64) -> bytes:
    """A small MP4: a bright square moving over a gradient."""
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    video[..., 2] = np.linspace(0, 255, width, dtype=np.uint8)
    for i in range(frames):
        video[i, 16:40, 8 + 2 * i : 32 + 2 * i] = 255
    return encode_mp4(video, 16)


def test_create_get_use_and_delete_a_character(served: Served) -> None:
    client = served.sdk()
    character = client.videos.create_character(name="Ada", video=("ada.mp4", clip(), "video/mp4"))
    assert character.id and character.id.startswith("char_")  # noqa: PT018
    assert character.name == "Ada"
    again = client.videos.get_character(character.id)
    assert (again.id, again.name, again.created_at) == (character.id, "Ada", character.created_at)
    stored = list(served.folder.rglob(f"{character.id}.*"))
    assert sorted(p.suffix for p in stored) == [".json", ".png"]

    video = client.videos.create_and_poll(
        prompt="Ada walks",
        model=IMAGE_TAKING,
        **SMALL,
        extra_body={"character_id": character.id, "steps": 1, "seed": 3},
    )
    assert video.status == "completed", video.error

    with pytest.raises(openai.BadRequestError) as text_only:
        client.videos.create(prompt="x", model=TEXT_ONLY, **SMALL, extra_body={"character_id": character.id})
    assert text_only.value.body["param"] == "character_id"  # type: ignore[index]
    assert IMAGE_TAKING in str(text_only.value)

    deleted = client.delete(f"/videos/characters/{character.id}", cast_to=dict[str, Any])
    assert deleted == {"id": character.id, "object": "character.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.videos.get_character(character.id)
    assert not list(served.folder.rglob(f"{character.id}.*"))


def test_another_tenants_character_is_not_found(served: Served) -> None:
    character = served.sdk().videos.create_character(name="Bo", video=("bo.mp4", clip(), "video/mp4"))
    assert character.id is not None
    globex = served.sdk("globex")
    with pytest.raises(openai.NotFoundError):
        globex.videos.get_character(character.id)
    with pytest.raises(openai.NotFoundError):
        globex.videos.create(
            prompt="x",
            model=IMAGE_TAKING,
            **SMALL,
            extra_body={"character_id": character.id},
        )
    with pytest.raises(openai.NotFoundError):
        globex.delete(f"/videos/characters/{character.id}", cast_to=dict[str, Any])
    assert served.sdk().videos.get_character(character.id).name == "Bo"  # still there


@pytest.mark.parametrize(
    "video",
    [
        b"not a video at all",
        clip()[:600],  # the header of an MP4 whose frames are cut off
        b"\x00\x00\x00\x18ftypisom" + b"\x00" * (MAX_VIDEO_BYTES + 1),  # over the bytes limit
    ],
    ids=["garbage", "truncated", "oversized"],
)
def test_a_video_that_cannot_be_used_is_refused_naming_video(served: Served, video: bytes) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        served.sdk().videos.create_character(name="x", video=("x.mp4", video, "video/mp4"))
    assert bad.value.body["param"] == "video"  # type: ignore[index]


def test_grpc_callers_use_a_character_created_over_rest(served: Served) -> None:
    character = served.sdk().videos.create_character(name="Cy", video=("cy.mp4", clip(), "video/mp4"))
    request = pb.GenerateRequest(
        prompt="Cy waves",
        model=IMAGE_TAKING,
        width=64,
        height=64,
        num_frames=5,
        num_inference_steps=1,
        character_id=str(character.id),
    )
    with Client(served.server.address, api_key=served.keys["acme"], timeout=60) as client:
        events = list(client.generate(request))
    assert events[-1].WhichOneof("kind") == "completed"


def test_grpc_and_the_cli_create_get_use_and_delete_characters(served: Served, tmp_path: Path) -> None:
    with Client(served.server.address, api_key=served.keys["acme"], timeout=60) as client:
        made = client.create_character("Dot", clip())
        assert made.id.startswith("char_")
        assert (made.name, made.width, made.height) == ("Dot", 96, 64)
        assert client.get_character(made.id).name == "Dot"
        events = list(
            client.generate(
                "Dot waves",
                model=IMAGE_TAKING,
                width=64,
                height=64,
                num_frames=5,
                num_inference_steps=1,
                character_id=made.id,
            )
        )
        assert events[-1].WhichOneof("kind") == "completed"
        with pytest.raises(InvalidArgument) as bad:
            client.create_character("Bad", b"not a video")
        assert bad.value.field == "video"
        assert client.delete_character(made.id).id == made.id
        with pytest.raises(NotFound):
            client.get_character(made.id)
    video = tmp_path / "dot.mp4"
    video.write_bytes(clip())
    cli = [sys.executable, "-m", "moviola.client.cli", "characters"]
    env = {**os.environ, "MOVIOLA_API_KEY": served.keys["acme"]}
    server = ["--server", served.server.address]
    created = subprocess.run(
        [*cli, "create", "Dot", "--video", str(video), *server],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    character_id = created.stdout.split()[0]
    shown = subprocess.run(
        [*cli, "get", character_id, *server], capture_output=True, text=True, env=env, check=True
    )
    assert shown.stdout.split()[1:] == ["Dot", "96x64"]
    subprocess.run(
        [*cli, "delete", character_id, *server], capture_output=True, text=True, env=env, check=True
    )
    missing = subprocess.run(
        [*cli, "get", character_id, *server], capture_output=True, text=True, env=env, check=False
    )
    assert missing.returncode == 1
    assert "not found" in missing.stderr


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (VideoLimits(max_side=64), "on a side"),
        (VideoLimits(max_frames=8), "more than 8 frames"),
        (VideoLimits(max_seconds=0.5), "longer than 0.5 seconds"),
        (VideoLimits(max_decoded_pixels=96 * 64 * 4), "pixels in all"),
    ],
)
def test_each_limit_refuses_a_video_beyond_it(limits: VideoLimits, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says) as refused:
        decode(clip(), limits=limits)
    assert refused.value.field == "video"


def test_a_long_video_keeps_a_few_frames_spread_over_it() -> None:
    decoded = decode(clip(frames=65), keep=4)
    assert (decoded.width, decoded.height, decoded.frames) == (96, 64, 65)
    assert len(decoded.samples) == 4
    assert decoded.seconds == pytest.approx(65 / 16)
