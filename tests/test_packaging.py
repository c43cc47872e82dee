"""What the installed ``moviola`` package needs: its base dependencies, and no dev tool.

A gateway is installed without extras (``pip install moviola``): no pytest, no hypothesis, no
torch. Two quick checks hold that here; ``tests/test_deploy_run.py`` installs into a fresh venv
from the index for real (slow).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server/moviola"
#: What the installed package offers to import without extras: the processes' commands and the test helper.
ENTRY_MODULES = ("moviola.runtime.commands", "moviola.runtime.gateway", "moviola.testing")


def _dev_only_modules() -> set[str]:
    """Top-level modules of the distributions that only the [dev] extra names (pytest, hypothesis, ...)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    named = [*project["dependencies"], *(r for name, group in extras.items() if name != "dev" for r in group)]
    elsewhere = {canonicalize_name(Requirement(r).name) for r in named}
    dev = {canonicalize_name(Requirement(r).name) for r in extras["dev"]} - elsewhere
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if any(canonicalize_name(d) in dev for d in dists)
    }


def _imported(path: Path) -> set[str]:
    """The top-level names a module imports, wherever in it (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_server_package_imports_no_dev_tool() -> None:
    dev_only = _dev_only_modules()
    assert {"pytest", "hypothesis", "mypy"} <= dev_only  # the list is what it should be
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _imported(path) & dev_only
    )
    assert offenders == [], "test tools belong in tests/harness/, not the installed package"


def _base_distributions() -> set[str]:
    """Every distribution ``pip install moviola`` brings: its base requirements, followed down."""
    found: set[str] = set()
    todo = [(requirement, "") for requirement in metadata.requires("moviola") or []]
    seen: set[tuple[str, str]] = set()
    while todo:
        text, extra = todo.pop()
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        for wanted in ("", *requirement.extras):
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            found.add(name)
            todo += [(r, wanted) for r in metadata.requires(name) or []]
    return found | {"moviola", "moviola-client"}


def _base_only_site(folder: Path) -> Path:
    """A site-packages with only the base distributions' files in it (linked, not copied)."""
    for name in _base_distributions():
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            if file.parts[0] == "..":  # scripts in bin/
                continue
            target = folder / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(Path(str(distribution.locate_file(file))).resolve())
    return folder


def test_the_gateway_and_moviola_testing_import_with_the_base_dependencies_alone(tmp_path: Path) -> None:
    site = _base_only_site(tmp_path / "site-packages")
    # The package's sources (installed editable here) after the linked site-packages; no other site (-S).
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "server"), str(ROOT / "clients/python")]),
    }

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )

    absent = python(
        "-c",
        "import importlib.util as u; print([m for m in ('torch', 'pytest', 'hypothesis', 'lancedb') if u.find_spec(m)])",
    )
    assert absent.stdout.strip() == "[]", absent.stderr  # the view is what a bare install has
    imported = python("-c", f"import {', '.join(ENTRY_MODULES)}")
    assert imported.returncode == 0, imported.stderr[-3000:]
    served = python("-m", "moviola.client.cli", "serve", "--help")  # the `moviola serve` a user types
    assert served.returncode == 0, served.stderr[-3000:]
    assert "--redis-url" in served.stdout


def test_the_wheel_ships_the_console_files(tmp_path: Path) -> None:
    """The browser console's static files (``moviola/console/``) are package data: in the wheel, every one."""
    from hatchling.builders.wheel import WheelBuilder

    built = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(built) as wheel:
        shipped = {name for name in wheel.namelist() if name.startswith("moviola/console/")}
    expected = {f"moviola/console/{p.name}" for p in (PACKAGE / "console").iterdir() if p.is_file()}
    assert shipped == expected
    assert "moviola/console/index.html" in shipped
