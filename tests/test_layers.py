"""The layers written in pyproject.toml hold, catch an upward import, and nothing imports in a cycle.

``make lint`` runs ``lint-imports`` over the tree; these tests also show the contracts can fail:
each adds one forbidden import to the real import graph and checks the contract breaks.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

ROOT = Path(__file__).resolve().parent.parent
CONFIG: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
KINDS = {"layers": LayersContract, "forbidden": ForbiddenContract}
configuration.configure()  # import-linter's own defaults (its timer), as `lint-imports` sets them


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("moviola", include_external_packages=True)


def _contract(kind: str) -> Any:
    session = {k: v for k, v in CONFIG.items() if k != "contracts"}
    found = next(c for c in CONFIG["contracts"] if c["type"] == kind)
    options = {k: v for k, v in found.items() if k not in ("name", "type")}
    return KINDS[kind](name=found["name"], session_options=session, contract_options=options)


def _kept(kind: str, extra: tuple[str, str] | None = None) -> bool:
    graph = _graph()  # a fresh one: the test's import is added to it alone
    if extra is not None:
        importer, imported = extra
        graph.add_import(
            importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}"
        )
    return bool(_contract(kind).check(graph, verbose=False).kept)


def test_the_tree_keeps_every_contract() -> None:
    assert _kept("layers")
    assert _kept("forbidden")


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("moviola.scheduler.base", "moviola.service"),  # a backend reaching up to the service
        ("moviola.service", "moviola.api.status"),  # the service reaching up to a face
        ("moviola.rest.app", "moviola.api.status"),  # one face leaning on the other
        ("moviola.api.generation", "moviola.rest.videos"),
        ("moviola.storage.s3", "moviola.runtime.front"),  # anything reaching the composition roots
    ],
)
def test_an_upward_or_sideways_import_breaks_the_layers(importer: str, imported: str) -> None:
    assert not _kept("layers", (importer, imported))


def test_grpc_below_the_grpc_face_breaks_its_contract() -> None:
    assert not _kept("forbidden", ("moviola.rest.errors", "grpc"))


def test_no_module_imports_itself_through_others() -> None:
    """No cycles, imports inside functions included (grimp reads every import statement)."""
    graph = _graph()
    server = sorted(
        m for m in graph.modules if (ROOT / "server" / Path(*m.split("."))).with_suffix(".py").exists()
    )
    assert len(server) > 100  # the walk sees the server's modules
    cycles = []
    for module in server:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []
