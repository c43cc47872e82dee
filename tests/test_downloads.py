"""Finished videos for callers anywhere: S3 storage, presigned links, DownloadVideo, posters, retention.

A real S3 server (SeaweedFS) and real servers; links are fetched with a plain HTTP client
that has no AWS credentials, and the CLI runs with none either.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.s3 import S3Server
from helpers import decode, moviola
from PIL import Image

from moviola.client import Client, RequestOptions
from moviola.client.errors import FailedPrecondition, NotFound
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb

#: Remove every AWS variable the test run has, so that only the server's own settings count.
NO_AWS = {
    "AWS_ENDPOINT_URL_S3": "",
    "AWS_ENDPOINT_URL": "",
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
}
SMALL: RequestOptions = {"num_frames": 9, "num_inference_steps": 2, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def s3_server(s3: S3Server, prefix: str, data_dir: Path, cache_dir: Path, *extra: str) -> ServerProcess:
    return ServerProcess(
        [
            "--data-dir",
            str(data_dir),
            "--cache-dir",
            str(cache_dir),
            "--storage-url",
            f"s3://videos/{prefix}",
            *extra,
        ],
        env=s3.client_env(),
    )


@pytest.fixture(scope="module")
def on_s3(s3: S3Server, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with s3_server(s3, "e2e", tmp_path_factory.mktemp("data"), cache_dir, "--url-ttl", "5s") as server:
        yield server


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def key_of(uri: str) -> str:
    assert uri.startswith("s3://videos/")
    return uri.removeprefix("s3://videos/")


def frames_of(data: bytes, tmp_path: Path) -> int:
    path = tmp_path / "fetched.mp4"
    path.write_bytes(data)
    return len(decode(path)[0])


def test_a_completed_job_links_to_its_video_and_poster_from_anywhere(
    on_s3: ServerProcess, s3: S3Server, tmp_path: Path
) -> None:
    with Client(on_s3.address, timeout=30) as client:
        done = list(client.generate("a fox", **SMALL))[-1].completed
        assert done.video_uri.startswith("s3://videos/e2e/")
        assert (
            s3.client().head_object(Bucket="videos", Key=key_of(done.video_uri))["ContentLength"]
            == done.size_bytes
        )
        status, video = fetch(done.download_url)
        assert status == 200
        assert frames_of(video, tmp_path) == 9
        status, poster = fetch(done.thumbnail_download_url)
        assert status == 200
        assert Image.open(io.BytesIO(poster)).size == (64, 64)
        expires = done.download_url_expire_time.ToSeconds()
        assert time.time() < expires <= time.time() + 6
        assert not done.HasField("expire_time")  # no --retention: kept

        job_id = list(client.generate("a second fox", **SMALL))[-1].job_id
        link = client.get(job_id).result.download_url
        assert fetch(link)[0] == 200
        deadline = time.monotonic() + 30
        while fetch(link)[0] == 200:  # waits out the link's 5 s lifetime
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert fetch(link)[0] == 403
        renewed = client.get(job_id).result.download_url
        assert fetch(renewed)[0] == 200


def test_download_video_streams_a_multi_mb_video_intact_in_chunks(on_s3: ServerProcess, s3: S3Server) -> None:
    """Tiny models make small videos: the stored object is swapped for 3 MiB of random bytes."""
    with Client(on_s3.address, timeout=60) as client:
        done = list(client.generate("a fox", **SMALL))[-1]
        large = os.urandom(3 * 1024 * 1024 + 17)
        s3.client().put_object(Bucket="videos", Key=key_of(done.completed.video_uri), Body=large)
        chunks = list(client.download(done.job_id))
        assert len(chunks) == 4
        assert max(len(c) for c in chunks) <= 1024 * 1024
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == hashlib.sha256(large).hexdigest()
        poster = b"".join(client.download(done.job_id, thumbnail=True))
        with Image.open(io.BytesIO(poster)) as image:
            assert image.format == "JPEG"


def test_download_video_refuses_unknown_and_unfinished_jobs(on_s3: ServerProcess) -> None:
    with Client(on_s3.address, timeout=30) as client:
        with pytest.raises(NotFound):
            list(client.download("0" * 32))
        job = client.submit("long", num_frames=9, num_inference_steps=50, width=64, height=64)
        client.cancel(job.id)
        with pytest.raises(FailedPrecondition, match="only a completed job has a video"):
            list(client.download(job.id))


def test_the_cli_saves_videos_from_a_server_whose_storage_it_cannot_see(
    on_s3: ServerProcess, tmp_path: Path
) -> None:
    """``generate -o`` and ``jobs download`` go through DownloadVideo: no AWS credentials, no shared disk."""
    out = tmp_path / "fox.mp4"
    args = ["generate", "a fox", "--server", on_s3.address, "-o", str(out), "--frames", "9", "--steps", "2"]
    result = moviola(*args, "--width", "64", "--height", "64", env=NO_AWS)
    assert result.returncode == 0, result.stderr
    assert frames_of(out.read_bytes(), tmp_path) == 9
    with Client(on_s3.address) as client:
        job_id = list(client.generate("another", **SMALL))[-1].job_id
    poster = tmp_path / "poster.jpg"
    result = moviola(
        "jobs", "download", job_id, "--server", on_s3.address, "-o", str(poster), "--thumbnail", env=NO_AWS
    )
    assert result.returncode == 0, result.stderr
    with Image.open(poster) as image:
        assert image.format == "JPEG"
    result = moviola(
        "jobs", "download", "0" * 32, "--server", on_s3.address, "-o", str(tmp_path / "x"), env=NO_AWS
    )
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
    assert not (tmp_path / "x").exists()


def test_local_storage_has_no_links_and_downloads_the_same_way(client: Client) -> None:
    done = list(client.generate("a fox", **SMALL))[-1]
    assert done.completed.video_uri.startswith("file://")
    assert done.completed.download_url == ""  # a path on the server's disk would be no use elsewhere
    video = b"".join(client.download(done.job_id))
    assert video == Path(done.completed.video_uri.removeprefix("file://")).read_bytes()
    poster = b"".join(client.download(done.job_id, thumbnail=True))
    assert Image.open(io.BytesIO(poster)).size == (64, 64)


def test_retention_deletes_the_files_and_the_job_says_its_video_expired(
    s3: S3Server, cache_dir: Path, tmp_path: Path
) -> None:
    with (
        s3_server(s3, "kept-briefly", tmp_path, cache_dir, "--retention", "2s") as server,
        Client(server.address) as client,
    ):
        done = list(client.generate("a fox", **SMALL))[-1]
        result = client.get(done.job_id).result
        assert result.HasField("expire_time")
        assert not result.expired
        assert fetch(result.download_url)[0] == 200
        bucket, key = s3.client(), key_of(done.completed.video_uri)
        deadline = time.monotonic() + 30
        while "Contents" in bucket.list_objects_v2(
            Bucket="videos", Prefix=key
        ):  # the sweeper runs each second
            assert time.monotonic() < deadline, "the expired video was not deleted"
            time.sleep(0.5)
        assert "Contents" not in bucket.list_objects_v2(Bucket="videos", Prefix=key.replace(".mp4", ".jpg"))
        sheet = key.replace(".mp4", ".spritesheet.jpg")
        assert "Contents" not in bucket.list_objects_v2(Bucket="videos", Prefix=sheet)
        result = client.get(done.job_id).result
        assert result.expired
        assert result.download_url == ""
        with pytest.raises(NotFound, match="expired"):
            list(client.download(done.job_id))


def test_any_gateway_downloads_a_job_a_worker_stored_on_s3(
    s3: S3Server, redis_url: str, tmp_path: Path
) -> None:
    storage = ["--storage-url", "s3://videos/scale-out"]
    worker = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path / "w"), "--name", "w", *storage],
        program=[sys.executable, "-m", "moviola.runtime", "simulated-worker"],
        worker=True,
        env=s3.client_env(),
    )
    first = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path / "a"), *storage], env=s3.client_env()
    )
    second = ServerProcess(
        ["--redis-url", redis_url, "--data-dir", str(tmp_path / "b"), *storage], env=s3.client_env()
    )
    with (
        worker,
        first,
        second,
        Client(first.address, timeout=30) as a,
        Client(second.address, timeout=30) as b,
    ):
        done = list(a.generate("a fox", **SMALL))[-1]
        assert done.WhichOneof("kind") == "completed", done
        stored = s3.client().get_object(Bucket="videos", Key=key_of(done.completed.video_uri))["Body"].read()
        assert b"".join(b.download(done.job_id)) == stored
        assert fetch(b.get(done.job_id).result.download_url) == (200, stored)


def test_wrong_credentials_stop_the_server_at_start_with_a_clear_message(
    s3: S3Server, tmp_path: Path, cache_dir: Path
) -> None:
    env = {**s3.client_env(secret="wrong")}
    command = [sys.executable, "-m", "moviola.runtime", "serve", "--port", "0", "--data-dir", str(tmp_path)]
    command += ["--cache-dir", str(cache_dir), "--storage-url", "s3://videos/x"]
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "credentials were refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_stopped_s3_server_fails_the_job_retryably_and_loses_nothing(
    tmp_path: Path, cache_dir: Path
) -> None:
    with S3Server(tmp_path / "s3") as s3:
        server = s3_server(s3, "outage", tmp_path / "data", cache_dir, "--store-timeout", "1s")
        with server, Client(server.address, timeout=30) as client:
            s3.stop()
            failed = list(client.generate("a fox", **SMALL))[-1]
            assert failed.WhichOneof("kind") == "failed"
            assert failed.failed.code == pb.FAILURE_CODE_UNAVAILABLE
            assert failed.failed.retryable
            assert "could not store the video in s3://videos/outage" in failed.failed.message
            assert client.get(failed.job_id).state == pb.JOB_STATE_FAILED
            s3.start()
            again = list(client.generate("a fox", **SMALL))[-1]
            assert again.WhichOneof("kind") == "completed"
            assert b"".join(client.download(again.job_id))[4:8] == b"ftyp"
