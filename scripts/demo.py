"""``make demo``: start the embedded server, generate a clip through the CLI, stop the server.

Everything lives under .demo/ (the tiny model, the server's videos, the log).
"""

from __future__ import annotations

import subprocess
import sys
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
    with ServerProcess(args, log_path=log) as server:
        print(f"server ready on {server.address}; generating {PROMPT!r}\n", flush=True)
        cli = [sys.executable, "-m", "moviola.client.cli"]
        subprocess.run([*cli, "models", "--server", server.address], check=True)
        done = subprocess.run([*cli, "generate", PROMPT, "--server", server.address, "--out", str(out)])
        print("\nstopping the server ...", flush=True)
    if done.returncode != 0:
        print(f"generation failed; see {log}", file=sys.stderr)
        return done.returncode
    print(f"\nyour video: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
