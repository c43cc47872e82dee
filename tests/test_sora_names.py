"""Sora code's model names and sizes: ``sora-2``/``sora-2-pro`` and the four Sora sizes, on both faces."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import av
import openai
import pytest

from moviola.aliases import SORA, SORA_PRO, Aliases
from moviola.catalog import BUILTIN_MODELS, load_catalog
from moviola.client import Client
from moviola.errors import InvalidRequest
from moviola.sizes import SORA_SIZES, made
from moviola.testing import ServerProcess, free_port
from moviola.validation import RequestDraft, validate

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
SHIPPED = {i: s for i, s in load_catalog().items() if not s.opt_in}


def test_sora_names_default_to_the_default_model_and_the_largest_one() -> None:
    names = Aliases.of(SHIPPED, "wan2.2-ti2v-5b")
    assert names.resolve(SORA) == "wan2.2-ti2v-5b"
    assert names.resolve(SORA_PRO) == "wan2.2-t2v-a14b"  # 1280x720 beats 1280x704
    image_only = {"wan2.2-i2v-a14b": SHIPPED["wan2.2-i2v-a14b"], "ltx-video": SHIPPED["ltx-video"]}
    assert (
        Aliases.of(image_only, "wan2.2-i2v-a14b").resolve(SORA) == "ltx-video"
    )  # the default needs an image


def test_the_operators_aliases_come_first_and_bad_ones_are_refused() -> None:
    names = Aliases.of(SHIPPED, "wan2.2-t2v-a14b", ("sora-2=wan2.1-t2v", "house=ltx-video"))
    assert names.resolve(SORA) == "wan2.1-t2v-1.3b"  # by family
    assert names.of_model("ltx-video") == ("house",)
    for bad, says in [
        ("sora-2", "ALIAS=MODEL"),
        ("x=nope", "not a served model"),
        ("ltx-video=wan2.1-t2v", "already a model id"),
    ]:
        with pytest.raises(ValueError, match=says):
            Aliases.of(SHIPPED, "wan2.2-t2v-a14b", (bad,))


def test_the_size_table_in_the_docs_is_what_each_model_makes() -> None:
    text = (ROOT / "docs/api.md").read_text().split("### Sora's sizes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([\w.-]+)` \| (.+?) \|$", text, re.MULTILINE)
    assert {model for model, _ in rows} == set(SHIPPED)
    for model, cells in rows:
        spec = SHIPPED[model]
        expected = [made(spec, s, *map(int, s.split("x")), strict=False) for s in SORA_SIZES]
        assert [c.strip() for c in cells.split("|")] == [f"{w}x{h}" for w, h in expected], model


def test_strict_sizes_refuse_a_size_the_model_does_not_make_naming_size() -> None:
    draft = RequestDraft(prompt="x", model="tiny-wan2.2-t2v", size="1792x1024")
    assert validate(draft, BUILTIN_MODELS, "tiny-wan2.2-t2v").width == 224  # mapped
    with pytest.raises(InvalidRequest) as refused:
        validate(draft, BUILTIN_MODELS, "tiny-wan2.2-t2v", strict_sizes=True)
    assert refused.value.field == "size"


@pytest.fixture(scope="module")
def sora(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    folder = tmp_path_factory.mktemp("sora")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    args += ["--model", "tiny-wan2.2-t2v", "--also-serve", "tiny-wan2.1-t2v"]
    with ServerProcess([*args, "--model-alias", "house-style=tiny-wan2.1-t2v"]) as server:
        yield server, f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("size", SORA_SIZES)
def test_sora_code_runs_with_its_model_name_and_sizes(sora: tuple[ServerProcess, str], size: str) -> None:
    client = openai.OpenAI(base_url=sora[1], api_key="unused", max_retries=0)
    # Sora's seconds (4, 8, 12) are longer than a tiny twin's window: one second here.
    video = client.videos.create_and_poll(
        prompt="a fox",
        model="sora-2",
        size=size,  # type: ignore[arg-type]
        seconds="1",  # type: ignore[arg-type]
        extra_body={"steps": 1},
    )
    assert video.status == "completed"
    assert video.model == "sora-2"  # the name the caller sent, which the SDK compares
    shown = video.model_dump()
    assert shown["moviola_model"] == "tiny-wan2.2-t2v"
    width, height = (224, 128) if size in ("1280x720", "1792x1024") else (128, 224)
    assert str(video.size) == f"{width}x{height}"  # the size made, from the model's table
    with av.open(io.BytesIO(client.videos.download_content(video.id).read()), mode="r") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (width, height)
    client.close()


def test_aliases_reach_grpc_and_the_model_list(sora: tuple[ServerProcess, str]) -> None:
    with Client(sora[0].address) as client:
        listed = {m.id: list(m.aliases) for m in client.list_models()}
        assert listed["tiny-wan2.2-t2v"] == ["sora-2", "sora-2-pro"]
        assert listed["tiny-wan2.1-t2v"] == ["house-style"]
        events = list(client.generate("a fox", model="house-style", num_frames=5, num_inference_steps=1))
        assert events[-1].HasField("completed")
        assert client.get(events[0].job_id).request.model == "tiny-wan2.1-t2v"


def test_an_unknown_model_lists_the_aliases_too(sora: tuple[ServerProcess, str]) -> None:
    client = openai.OpenAI(base_url=sora[1], api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.videos.create(prompt="x", model="sora-3")
    assert refused.value.body["param"] == "model"  # type: ignore[index]
    assert "sora-2-pro" in refused.value.body["message"]  # type: ignore[index]
    client.close()


def test_the_sdks_model_list_shows_the_aliases(sora: tuple[ServerProcess, str]) -> None:
    client = openai.OpenAI(base_url=sora[1], api_key="unused", max_retries=0)
    listed = {model.id: model.model_dump() for model in client.models.list()}
    assert {"tiny-wan2.2-t2v", "tiny-wan2.1-t2v", "sora-2", "sora-2-pro", "house-style"} == set(listed)
    assert listed["sora-2"]["moviola_model"] == "tiny-wan2.2-t2v"
    assert listed["house-style"]["moviola_model"] == "tiny-wan2.1-t2v"
    assert listed["sora-2"]["object"] == "model"
    client.close()


async def test_the_async_sdk_runs_sora_code_too(sora: tuple[ServerProcess, str]) -> None:
    client = openai.AsyncOpenAI(base_url=sora[1], api_key="unused", max_retries=0)
    video = await client.videos.create_and_poll(
        prompt="a fox",
        model="sora-2-pro",
        size="720x1280",
        seconds="1",  # type: ignore[arg-type]
        extra_body={"steps": 1},
    )
    assert (video.status, video.model, str(video.size)) == ("completed", "sora-2-pro", "128x224")
    sheet = await (await client.videos.download_content(video.id, variant="spritesheet")).aread()
    assert sheet[:3] == b"\xff\xd8\xff"  # a JPEG
    with pytest.raises(openai.NotFoundError):
        await client.videos.retrieve("video_missing")
    await client.close()
