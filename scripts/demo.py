"""``make demo``: start the embedded server, generate a clip, embed it and find it again through the CLI, stop.

Everything lives under .demo/ (the tiny model, the server's videos, the log).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from moviola.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
PROMPT = "a red fox running through snow"


def main() -> int:
    DEMO.mkdir(exist_ok=True)
    out = DEMO / "fox.mp4"
    log = DEMO / "server.log"
    print(f"starting the embedded server (log: {log.relative_to(ROOT)}) ...", flush=True)
    args = ["--data-dir", str(DEMO / "data"), "--cache-dir", str(DEMO / "cache")]
    args += ["--search-index", str(DEMO / "search")]
    with ServerProcess(args, log_path=log) as server:
        print(f"server ready on {server.address}; generating {PROMPT!r}\n", flush=True)
        cli = [sys.executable, "-m", "moviola.client.cli"]
        subprocess.run([*cli, "models", "--server", server.address], check=True)
        generated = subprocess.run([*cli, "generate", PROMPT, "--server", server.address, "--out", str(out)])
        failed = "generation" if generated.returncode else ""
        if not failed:
            print("\nembedding the clip (tiny random-weight SigLIP in-process; Triton in production) ...")
            embedded = subprocess.run(
                [*cli, "embed", "--video", str(out), "--server", server.address],
                capture_output=True,
                text=True,
            )
            if embedded.returncode:
                print(embedded.stderr, file=sys.stderr)
                failed = "embedding"
            else:
                vector = json.loads(embedded.stdout)
                print(
                    f"{vector['model']}: a {vector['dimension']}-dimensional vector "
                    f"from {vector['sampled_frames']} frames"
                )
                failed = find_again(cli, server.address)
        print("\nstopping the server ...", flush=True)
    if failed:
        print(f"{failed} failed; see {log}", file=sys.stderr)
        return 1
    print(f"\nyour video: {out}")
    return 0


def find_again(cli: list[str], address: str) -> str:
    """Search the server's index for the prompt: the clip just made comes back (indexing takes a moment)."""
    print(f"\nsearching your videos for {PROMPT!r} ...", flush=True)
    deadline = time.monotonic() + 30
    while True:
        found = subprocess.run(
            [*cli, "search", PROMPT, "--top-k", "1", "--json", "--server", address],
            capture_output=True,
            text=True,
        )
        if found.returncode:
            print(found.stderr, file=sys.stderr)
            return "search"
        if found.stdout.strip():
            hit = json.loads(found.stdout.splitlines()[0])
            print(f"found job {hit['jobId']} (score {hit['score']:.3f}, matched its {hit['matched']})")
            return ""
        if time.monotonic() > deadline:
            print("the clip was not indexed within 30 s", file=sys.stderr)
            return "search"
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
