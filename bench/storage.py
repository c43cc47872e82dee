"""S3 storage's cost per job: Moviola's ``S3Storage`` vs. the same library used directly.

One real S3 server (SeaweedFS ``weed mini``) on this machine. Per job, each path stores a video
and its poster and makes a presigned link to each, the work a finished job costs:

- ``direct``: boto3 by hand, as a caller without Moviola would write it: two ``put_object`` calls
  and two ``generate_presigned_url`` calls on one client;
- ``moviola``: ``S3Storage.put`` (``upload_fileobj``, multipart above 8 MiB) and ``S3Storage.link``
  twice, through the same kind of client (standard retries, path-style addressing).

Video sizes: 256 KiB (a short clip) and 16 MiB (two parts). Cells alternate round after round, so
machine noise hits both paths; the table gives per-job milliseconds (median over rounds) and the
ratio moviola / direct.

    python bench/storage.py [--jobs 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moviola.settings import StorageSettings
from moviola.storage.base import Variant
from moviola.storage.s3 import S3Storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.s3 import S3Server

SIZES = {"256 KiB": 256 * 1024, "16 MiB": 16 * 1024 * 1024}
POSTER = os.urandom(20 * 1024)


def direct(client: Any, prefix: str) -> Callable[[str, bytes], None]:
    def store(job_id: str, video: bytes) -> None:
        for suffix, body, kind in ((".jpg", POSTER, "image/jpeg"), (".mp4", video, "video/mp4")):
            key = f"{prefix}/{job_id}{suffix}"
            client.put_object(Bucket="videos", Key=key, Body=body, ContentType=kind)
            client.generate_presigned_url(
                "get_object", Params={"Bucket": "videos", "Key": key}, ExpiresIn=3600
            )

    return store


def moviola(prefix: str) -> Callable[[str, bytes], None]:
    storage = S3Storage(f"s3://videos/{prefix}", endpoint=StorageSettings().s3_endpoint)

    def store(job_id: str, video: bytes) -> None:
        stored = storage.put(job_id, video, POSTER)
        storage.link(stored.uri, Variant.VIDEO, 3600)
        storage.link(stored.uri, Variant.THUMBNAIL, 3600)

    return store


def per_job_ms(store: Callable[[str, bytes], None], video: bytes, jobs: int, tag: str) -> float:
    started = time.perf_counter()
    for index in range(jobs):
        store(f"{tag}-{index}", video)
    return (time.perf_counter() - started) / jobs * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, S3Server(Path(tmp) / "s3") as s3:
        os.environ.update(s3.client_env())
        paths = {"direct": direct(s3.client(), "direct"), "moviola": moviola("moviola")}
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for size_name, size in SIZES.items():
                video = os.urandom(size)
                jobs = args.jobs if size < 1024 * 1024 else max(4, args.jobs // 8)
                order = list(paths.items()) if round_ % 2 == 0 else list(reversed(paths.items()))
                for name, store in order:
                    ms = per_job_ms(store, video, jobs, f"r{round_}")
                    results.setdefault((size_name, name), []).append(ms)
        print("| video | direct boto3 (ms/job) | Moviola S3Storage (ms/job) | ratio |")
        print("|---|---|---|---|")
        for size_name in SIZES:
            d = statistics.median(results[(size_name, "direct")])
            m = statistics.median(results[(size_name, "moviola")])
            print(f"| {size_name} | {d:.1f} | {m:.1f} | {m / d:.2f} |")


if __name__ == "__main__":
    main()
