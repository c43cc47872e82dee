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
