"""S3Storage against a real S3 server (SeaweedFS): layout, links, chunked reads, failures."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.s3 import S3Server

from moviola.errors import NotFound, NotInStorage, Unavailable
from moviola.settings import StorageSettings
from moviola.storage.base import CHUNK_BYTES, Variant
from moviola.storage.s3 import PART_BYTES, S3Storage


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def aws(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS variables for the test server, as a pod would have them."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in s3.client_env().items():
        monkeypatch.setenv(key, value)
    return s3.client_env()


def storage_at(url: str) -> S3Storage:
    """S3 storage as a process opens it: the endpoint from the settings, which read it from the environment."""
    return S3Storage(url, endpoint=StorageSettings().s3_endpoint)


def fetch(url: str) -> tuple[int, bytes]:
    """A plain HTTP GET, with no AWS credentials anywhere."""
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_stored_video_is_read_linked_and_deleted(s3: S3Server, aws: dict[str, str]) -> None:
    storage = storage_at("s3://videos/tenant-a/jobs")
    storage.check()
    stored = storage.put("job1", b"video bytes", b"poster bytes")
    assert stored.uri == "s3://videos/tenant-a/jobs/job1.mp4"
    assert stored.thumbnail_uri == "s3://videos/tenant-a/jobs/job1.jpg"
    head = s3.client().head_object(Bucket="videos", Key="tenant-a/jobs/job1.mp4")
    assert head["ContentType"] == "video/mp4"
    assert storage.read(stored.uri) == b"video bytes"
    assert storage.read(stored.uri, Variant.THUMBNAIL) == b"poster bytes"
    link = storage.link(stored.uri, Variant.VIDEO, 600)
    assert link is not None
    assert link.url.startswith(s3.endpoint)
    assert fetch(link.url) == (200, b"video bytes")
    poster = storage.link(stored.uri, Variant.THUMBNAIL, 600)
    assert poster is not None
    assert fetch(poster.url) == (200, b"poster bytes")
    storage.delete(stored.uri)
    with pytest.raises(NotFound):
        storage.read(stored.uri)
    assert fetch(link.url)[0] == 404


def test_a_link_stops_working_after_its_ttl_and_a_new_one_works(s3: S3Server, aws: dict[str, str]) -> None:
    import time

    storage = storage_at("s3://videos/ttl")
    stored = storage.put("job2", b"v", b"p")
    link = storage.link(stored.uri, Variant.VIDEO, 1)
    assert link is not None
    assert fetch(link.url)[0] == 200
    deadline = time.monotonic() + 30
    while fetch(link.url)[0] == 200:  # the link's clock, not a race: it runs out at expires_at
        assert time.monotonic() < deadline, "a 1 s link still worked after 30 s"
        time.sleep(0.5)
    assert time.time() >= link.expires_at - 1
    assert fetch(link.url)[0] == 403
    fresh = storage.link(stored.uri, Variant.VIDEO, 600)
    assert fresh is not None
    assert fetch(fresh.url) == (200, b"v")


def test_a_large_video_uploads_in_parts_and_reads_back_in_bounded_chunks(
    s3: S3Server, aws: dict[str, str]
) -> None:
    storage = storage_at("s3://videos/large")
    video = os.urandom(2 * PART_BYTES + 12345)
    parts: list[int] = []
    storage._client.meta.events.register(
        "provide-client-params.s3.UploadPart", lambda params, **_: parts.append(params["PartNumber"])
    )
    stored = storage.put("big", video, b"p")
    assert sorted(parts) == [1, 2, 3]  # the parts upload concurrently
    download = storage.open(stored.uri)
    assert download.size_bytes == len(video)
    chunks = list(download.chunks)
    assert max(len(c) for c in chunks) <= CHUNK_BYTES
    assert len(chunks) >= len(video) // CHUNK_BYTES
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(video).digest()


def test_a_failed_multipart_upload_leaves_no_object(s3: S3Server, aws: dict[str, str]) -> None:
    storage = storage_at("s3://videos/failing")

    def fail_second_part(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            raise ConnectionResetError("the network went away mid-upload")

    storage._client.meta.events.register("provide-client-params.s3.UploadPart", fail_second_part)
    with pytest.raises(Unavailable, match="could not store the video in s3://videos/failing"):
        storage.put("torn", os.urandom(2 * PART_BYTES + 1), b"p")
    client = s3.client()
    assert "Contents" not in client.list_objects_v2(Bucket="videos", Prefix="failing/torn.mp4")
    uploads = client.list_multipart_uploads(Bucket="videos", Prefix="failing/").get("Uploads", [])
    assert uploads == []  # aborted, so no orphan parts are billed either


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other-bucket/jobs/job1.mp4",
        "s3://videos/elsewhere/job1.mp4",
        "s3://videos/jobs/../secrets/job1.mp4",
        "s3://videos/jobs/job1.txt",
        "file:///etc/passwd",
    ],
)
def test_a_uri_outside_the_storage_is_never_read(uri: str, aws: dict[str, str]) -> None:
    storage = storage_at("s3://videos/jobs")
    with pytest.raises(NotInStorage):
        storage.read(uri)
    with pytest.raises(NotInStorage):
        storage.link(uri, Variant.VIDEO, 60)


def test_wrong_credentials_and_a_missing_bucket_are_clear_at_start(
    s3: S3Server, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Unavailable, match="no bucket nope"):
        storage_at("s3://nope/jobs").check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(Unavailable, match="credentials were refused"):
        storage_at("s3://videos/jobs").check()


def test_expired_videos_are_deleted_and_newer_ones_kept(s3: S3Server, aws: dict[str, str]) -> None:
    import time

    storage = storage_at("s3://videos/retention")
    old = storage.put("old", b"o", b"p")
    cutoff = time.time() + 1  # everything stored so far is older
    deadline = time.monotonic() + 10
    while time.time() < cutoff + 1:  # S3 times are whole seconds: store the newer one past the cutoff
        assert time.monotonic() < deadline
        time.sleep(0.2)
    new = storage.put("new", b"n", b"p")
    assert storage.delete_before(cutoff) == 1
    with pytest.raises(NotFound):
        storage.read(old.uri)
    with pytest.raises(NotFound):
        storage.read(old.uri, Variant.THUMBNAIL)
    assert storage.read(new.uri) == b"n"


def test_a_stopped_s3_server_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = S3Server(tmp_path / "s3")
    with server:
        for key, value in server.client_env().items():
            monkeypatch.setenv(key, value)
        storage = storage_at("s3://videos/jobs")
        storage.check()
    with pytest.raises(Unavailable, match="could not store the video"):
        storage.put("job", b"v", b"p")


def test_a_small_object_is_stored_read_and_deleted_beside_the_videos(
    s3: S3Server, aws: dict[str, str]
) -> None:
    """Characters' objects (``characters.py``): under the prefix, never taken for videos by the sweep."""
    storage = storage_at(f"s3://{s3.bucket}/objects")
    storage.put_object("characters/acme/char_1.json", b"{}", "application/json")
    assert storage.read_object("characters/acme/char_1.json") == b"{}"
    assert storage.delete_before(float("inf")) == 0
    storage.delete_object("characters/acme/char_1.json")
    with pytest.raises(NotFound):
        storage.read_object("characters/acme/char_1.json")
    with pytest.raises(ValueError, match="unsafe"):
        storage.read_object("characters/../char_1.json")
