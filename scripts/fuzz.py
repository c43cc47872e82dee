"""``make fuzz``: 10,000 generated requests against a real gateway; counts by status, memory, and a job after.

    python scripts/fuzz.py [--examples 10000] [--seed N]

Passes (exit 0) when no request got INTERNAL or UNKNOWN, the gateway's memory grew less than
``--max-growth-mib``, and an ordinary job runs afterwards. See ``tests/harness/fuzz.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # the client library logs every header it refuses to send
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it

from harness import fuzz
from harness.servers import RedisServer


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument(
        "--seed", type=int, default=None, help="Vary the requests (default: the fixed sequence)."
    )
    parser.add_argument("--max-growth-mib", type=float, default=200.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer() as redis_server,
        fuzz.Target(Path(tmp), redis_server.url) as target,
    ):
        fuzz.run(target.address, target.key, 100)  # warm up
        before = fuzz.rss_bytes(target.gateway.pid)
        began = time.monotonic()
        report = fuzz.run(target.address, target.key, args.examples, seed=args.seed)
        seconds = time.monotonic() - began
        grown = (fuzz.rss_bytes(target.gateway.pid) - before) / 2**20
        after = target.serves_a_normal_job()
    print(report.table())
    print(
        f"{sum(report.counts.values())} requests in {seconds:.0f}s; gateway RSS grew {grown:.1f} MiB; "
        f"an ordinary job afterwards: {after}"
    )
    for bad in report.bad:
        print("BAD", bad)
    failed = bool(report.bad) or grown > args.max_growth_mib or after != "completed"
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
