"""The docs name only modules that exist, and say how to run the processes as they are run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server/moviola"


def named_modules(text: str) -> set[str]:
    """Paths like ``runtime/gateway.py`` or ``scheduler/redis/`` written in backticks or table cells."""
    return set(re.findall(r"(?<![\w/.])((?:[a-z_]+/)+(?:[a-z_]+\.py)?|[a-z_]+\.py)(?![\w/])", text))


def test_every_module_the_architecture_names_exists() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    named = named_modules(text)
    assert "runtime/gateway.py" in named  # the pattern finds what it should
    missing = sorted(
        name
        for name in named
        if not (PACKAGE / name).exists() and not (ROOT / name).exists() and not name.startswith("triton/")
    )
    assert missing == []


def test_every_dotted_name_the_architecture_gives_resolves() -> None:
    text = (ROOT / "docs/architecture.md").read_text()
    dotted = set(re.findall(r"`((?:scheduler|pipelines|storage|embed)\.[a-z_]+\.[A-Za-z]+)`", text))
    assert dotted
    for name in dotted:
        module, attribute = name.rsplit(".", 1)
        assert hasattr(__import__(f"moviola.{module}", fromlist=[attribute]), attribute), name


def test_the_limits_docs_api_lists_are_the_ones_the_server_enforces() -> None:
    from moviola import validation as v
    from moviola.rest.limits import MAX_BODY_BYTES
    from moviola.settings import ServerSettings

    section = (ROOT / "docs/api.md").read_text().split("### Limits", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.MULTILINE))

    def row(field: str) -> str:
        return next(limit for fields, limit in rows.items() if field in fields)

    assert row("`prompt`").startswith(f"{v.MAX_PROMPT_CHARS} characters")
    assert row("`resolution`") == f"{v.MAX_NAME_CHARS} characters"
    assert row("`idempotency_key`") == f"{v.MAX_IDEMPOTENCY_KEY} characters"
    assert row("`job_id`") == f"{v.MAX_JOB_ID_CHARS} characters"
    assert row("`Embed.text`") == f"{v.MAX_EMBED_TEXT_CHARS} characters"
    assert row("`Embed.video_uri`") == f"{v.MAX_URI_CHARS} characters"
    image = row("`image`")
    assert f"({v.MAX_IMAGE_BYTES} bytes)" in image
    assert f"{v.MAX_IMAGE_PIXELS} pixels and {v.MAX_IMAGE_SIDE} on a side" in image
    assert f"({v.MAX_VIDEO_BYTES} bytes)" in row("`Embed.video` bytes")
    assert row("a whole message").startswith(f"{ServerSettings().max_message_bytes // 2**20} MiB")
    assert row("a REST request body").startswith(f"{MAX_BODY_BYTES // 2**20} MiB")
