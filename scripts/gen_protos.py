"""Generate the Python and Go stubs for the contract in protos/ (``make proto``).

The Python stubs are written once, into the client package (clients/python/moviola/v1),
and shared by the server and every Python caller; the Go stubs go to clients/go/moviolav1. ``--out`` writes elsewhere,
which the drift test uses to compare a fresh generation with the committed one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "clients" / "python"


def _plugin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(f"{name} not found next to {sys.executable}: pip install mypy-protobuf")
    return found


def generate(out: Path) -> list[Path]:
    """Generate stubs for every .proto under protos/ into ``out``; return the files written."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out / "moviola" / "v1"
    (package / "py.typed").touch()
    return sorted(p for p in package.iterdir() if p.is_file())


GO_MODULE = "github.com/moviola/moviola/clients/go"
DEFAULT_GO_OUT = ROOT / "clients" / "go"


def generate_go(out: Path) -> list[Path]:
    """Generate the Go stubs (package moviolav1) with protoc, protoc-gen-go and protoc-gen-go-grpc."""
    import subprocess

    missing = [
        tool for tool in ("protoc", "protoc-gen-go", "protoc-gen-go-grpc") if shutil.which(tool) is None
    ]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: run scripts/system-deps.sh (Debian: protobuf-compiler, "
            "protoc-gen-go, protoc-gen-go-grpc)"
        )
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    subprocess.run(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--go_out={out}",
            f"--go_opt=module={GO_MODULE}",
            f"--go-grpc_out={out}",
            f"--go-grpc_opt=module={GO_MODULE}",
            *protos,
        ],
        check=True,
    )
    return sorted((out / "moviolav1").glob("*.go"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--go-out", type=Path, default=DEFAULT_GO_OUT)
    parser.add_argument("--python-only", action="store_true", help="Skip the Go stubs.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in generate(args.out):
        print(path.relative_to(args.out))
    if not args.python_only:
        args.go_out.mkdir(parents=True, exist_ok=True)
        for path in generate_go(args.go_out):
            print(path.relative_to(args.go_out.parent))


if __name__ == "__main__":
    main()
