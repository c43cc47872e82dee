"""Fill clients/go/vendor/ from Debian's Go packages (/usr/share/gocode), offline.

With a vendor/ directory and `go 1.14` or later in go.mod, every go command (1.19 and modern
alike) builds in vendor mode: it reads nothing from the network and checks no go.sum, so
`cd clients/go && go run ./cmd/moviola-go ...` works on a fresh clone without the module proxy.

The tree is what `go mod vendor` would write: the packages the module imports (found with
`go list -deps` in GOPATH mode over Debian's sources), without their tests, each module's
licence files, and vendor/modules.txt marking every requirement of go.mod explicit. Each
requirement's version in go.mod is checked against the Debian package that provides it, so
the vendored code is the version go.mod names. `make go` runs this; vendor/ is not committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOCODE = Path(os.environ.get("GOCODE", "/usr/share/gocode"))
LICENCE_FILES = re.compile(
    r"^(LICEN[CS]E|COPYING|PATENTS|NOTICE|AUTHORS|CONTRIBUTORS)(\..*)?$", re.IGNORECASE
)


class VendorError(Exception):
    pass


def parse_go_mod(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The module path and the (path, version) requirements of a go.mod, in file order."""
    module = ""
    requires: list[tuple[str, str]] = []
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line.startswith("module "):
            module = line.split()[1]
        elif line == "require (":
            in_block = True
        elif in_block and line == ")":
            in_block = False
        elif in_block and line:
            path, version = line.split()[:2]
            requires.append((path, version))
        elif line.startswith("require "):
            path, version = line.split()[1:3]
            requires.append((path, version))
    if not module:
        raise VendorError("go.mod names no module")
    return module, requires


def module_go_version(root: Path) -> str:
    """The `go` line of a dependency's own go.mod, which modules.txt records ('' if none)."""
    go_mod = root / "go.mod"
    if go_mod.is_file():
        for line in go_mod.read_text().splitlines():
            if line.startswith("go "):
                return line.split()[1]
    return ""


def debian_matches(version: str, debian: str) -> bool:
    """Whether a go.mod version is what a Debian package version packages.

    `1:0.7.0+dfsg-1` packages v0.7.0; `0.0~git20200413.b5235f6-3` packages the pseudo-version
    v0.0.0-20200413hhmmss-b5235f6xxxxx (same date, same commit prefix).
    """
    upstream = debian.split(":", 1)[-1].rsplit("-", 1)[0]
    upstream = re.sub(r"\+(dfsg|ds)\d*$", "", upstream)
    git = re.fullmatch(r"[0-9.]+~git(\d{8})\.([0-9a-f]+)", upstream)
    if git:
        pseudo = re.fullmatch(r"v[0-9.]+-(?:0\.)?(\d{14})-([0-9a-f]{12})", version)
        return pseudo is not None and pseudo[1].startswith(git[1]) and pseudo[2].startswith(git[2])
    return version == "v" + upstream


def check_debian_version(path: str, version: str, root: Path) -> None:
    if shutil.which("dpkg-query") is None:
        return
    owner = subprocess.run(["dpkg-query", "-S", str(root)], capture_output=True, text=True)
    if owner.returncode != 0:
        return  # not installed by a package (a GOCODE of one's own): nothing to compare
    package = owner.stdout.split(":", 1)[0].split(",")[0].strip()
    debian = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=True
    ).stdout
    if not debian_matches(version, debian):
        raise VendorError(f"go.mod requires {path} {version}, but Debian's {package} is {debian}")


def list_dependencies(module: str) -> list[tuple[str, Path]]:
    """(import path, source directory) of every non-standard package the module's packages import."""
    ours = sorted(
        {
            module + ("/" + str(d.relative_to(HERE)) if d != HERE else "")
            for d in (p.parent for p in HERE.rglob("*.go"))
            if not {"vendor", "bin", "testdata"} & set(d.relative_to(HERE).parts)
        }
    )
    with tempfile.TemporaryDirectory() as gopath:
        link = Path(gopath, "src", module)
        link.parent.mkdir(parents=True)
        link.symlink_to(HERE)
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOFLAGS": "",
            "GOPATH": f"{gopath}{os.pathsep}{GOCODE}",
        }
        listed = subprocess.run(
            ["go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}\t{{.Dir}}{{end}}", *ours],
            cwd=gopath,
            env=env,
            capture_output=True,
            text=True,
        )
    if listed.returncode != 0:
        raise VendorError(
            f"go list over {GOCODE} failed (are Debian's Go gRPC packages installed? `make system-deps`):\n"
            + listed.stderr
        )
    deps = []
    for line in listed.stdout.splitlines():
        path, _, directory = line.partition("\t")
        if path and not (path == module or path.startswith(module + "/")):
            deps.append((path, Path(directory)))
    return deps


def owning_module(package: str, modules: list[str]) -> str:
    owners = [m for m in modules if package == m or package.startswith(m + "/")]
    if not owners:
        raise VendorError(f"{package} belongs to no module that go.mod requires: add it to go.mod")
    return max(owners, key=len)


def vendor(target: Path) -> None:
    module, requires = parse_go_mod((HERE / "go.mod").read_text())
    if target.exists():
        shutil.rmtree(target)  # before listing: GOPATH mode would read an old vendor/ too
    deps = list_dependencies(module)
    paths = [path for path, _ in requires]
    packages: dict[str, list[str]] = {path: [] for path in paths}
    for package, directory in deps:
        packages[owning_module(package, paths)].append(package)
        out = target / package
        out.mkdir(parents=True, exist_ok=True)
        for source in sorted(directory.iterdir()):
            if source.is_file() and not source.name.endswith("_test.go"):
                shutil.copyfile(source, out / source.name)
    lines = []
    for path, version in sorted(requires):
        root = GOCODE / "src" / path
        if packages[path]:
            check_debian_version(path, version, root)
            for source in sorted(root.iterdir()):
                if source.is_file() and LICENCE_FILES.match(source.name):
                    shutil.copyfile(source, target / path / source.name)
        go = module_go_version(root)
        lines += [f"# {path} {version}", "## explicit" + (f"; go {go}" if go else "")]
        lines += sorted(packages[path])
    (target / "modules.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    try:
        vendor(HERE / "vendor")
    except VendorError as error:
        print(f"vendor_debian: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
