"""S3 storage (AWS S3, or any S3 server: MinIO, SeaweedFS, Ceph): ``s3://BUCKET/PREFIX/<job id>.mp4``.

boto3 does the protocol: the standard AWS credential chain (``AWS_ACCESS_KEY_ID``, profiles, and on
EKS the pod's IAM role through IRSA or Pod Identity), SigV4 signing and presigning, retries, and
multipart uploads that are aborted when a part fails (so a failed upload leaves no object under the
final key). The endpoint of an S3 server other than AWS's is the settings' ``storage.s3_endpoint``
(from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``). Moviola adds only the key layout.
docs/operations.md says why boto3 rather than obstore.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlparse

from moviola.errors import NotFound, NotInStorage, Unavailable
from moviola.mp4 import MIME_TYPE, POSTER_MIME_TYPE
from moviola.storage.base import CHUNK_BYTES, Download, Link, StoredVideo, Variant, object_key

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
#: A job id has no dot, so no job's key is another job's.
SUFFIX = {Variant.VIDEO: ".mp4", Variant.THUMBNAIL: ".jpg", Variant.SPRITESHEET: ".spritesheet.jpg"}
CONTENT_TYPE = {
    Variant.VIDEO: MIME_TYPE,
    Variant.THUMBNAIL: POSTER_MIME_TYPE,
    Variant.SPRITESHEET: POSTER_MIME_TYPE,
}
#: Videos above this upload in parts of this size (S3's minimum part is 5 MiB).
PART_BYTES = 8 * 1024 * 1024
_MISSING = ("404", "NoSuchKey", "NotFound")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (``bucket``, ``some/prefix``); ValueError when it is not one."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://BUCKET/PREFIX URL: {url}")
    return parsed.netloc, parsed.path.strip("/")


def _code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Storage:
    def __init__(self, url: str, *, endpoint: str | None = None, client: Any = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self._client = client if client is not None else standard_client(endpoint)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, job_id: str, variant: Variant = Variant.VIDEO) -> str:
        if not _SAFE_ID.match(job_id):
            raise ValueError(f"unsafe job id {job_id!r}")
        name = f"{job_id}{SUFFIX[variant]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _key_of(self, uri: str, variant: Variant) -> str:
        """The key of ``variant`` of the video ``uri`` names; ``NotInStorage`` unless it is one of ours."""
        parsed = urlparse(uri)
        key = parsed.path.lstrip("/")
        folder, _, name = key.rpartition("/")
        job_id, dot, suffix = name.rpartition(".")
        if (
            parsed.scheme != "s3"
            or parsed.netloc != self.bucket
            or folder != self.prefix
            or f"{dot}{suffix}" != ".mp4"
            or not _SAFE_ID.match(job_id)
        ):
            raise NotInStorage(f"{uri} is not a video of this server's storage ({self.location})")
        return self._key(job_id, variant)

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _failed(self, doing: str, exc: Exception) -> Unavailable:
        code = _code(exc)
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            why = "the credentials were refused; check AWS_ACCESS_KEY_ID / the pod's IAM role"
        elif code in ("NoSuchBucket",):
            why = f"there is no bucket {self.bucket}"
        else:
            why = str(exc)
        return Unavailable(f"could not {doing} {self.location}: {why}", retry_after=5.0)

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket"):
                raise Unavailable(f"there is no bucket {self.bucket} ({self.location})") from exc
            raise self._failed("reach", exc) from exc
        except BotoCoreError as exc:
            raise self._failed("reach", exc) from exc

    def put(self, job_id: str, video: bytes, thumbnail: bytes, spritesheet: bytes = b"") -> StoredVideo:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        config = TransferConfig(
            multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=4
        )
        keys = {variant: self._key(job_id, variant) for variant in Variant}
        files = [(Variant.THUMBNAIL, thumbnail), (Variant.VIDEO, video)]  # the video last: it has its images
        if spritesheet:
            files.insert(1, (Variant.SPRITESHEET, spritesheet))
        try:
            for variant, data in files:
                if len(data) < PART_BYTES:  # one PUT: atomic, and without the transfer manager's threads
                    self._client.put_object(
                        Bucket=self.bucket, Key=keys[variant], Body=data, ContentType=CONTENT_TYPE[variant]
                    )
                    continue
                self._client.upload_fileobj(  # parts in parallel; a failed part aborts the whole upload
                    io.BytesIO(data),
                    self.bucket,
                    keys[variant],
                    ExtraArgs={"ContentType": CONTENT_TYPE[variant]},
                    Config=config,
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("store the video in", exc) from exc
        except Exception as exc:  # boto3's transfer manager wraps part failures
            raise self._failed("store the video in", exc) from exc
        return StoredVideo(
            uri=self._uri(keys[Variant.VIDEO]),
            size_bytes=len(video),
            thumbnail_uri=self._uri(keys[Variant.THUMBNAIL]),
        )

    def _get(self, uri: str, variant: Variant) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key_of(uri, variant)
        try:
            reply: dict[str, Any] = self._client.get_object(Bucket=self.bucket, Key=key)
            return reply
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"{uri}: the {variant.value} is gone (deleted or expired)") from exc
            raise self._failed("read from", exc) from exc
        except BotoCoreError as exc:
            raise self._failed("read from", exc) from exc

    def read(self, uri: str, variant: Variant = Variant.VIDEO) -> bytes:
        body = self._get(uri, variant)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def open(self, uri: str, variant: Variant = Variant.VIDEO) -> Download:
        reply = self._get(uri, variant)
        body = reply["Body"]

        def chunks() -> Generator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK_BYTES)

        return Download(int(reply["ContentLength"]), chunks())

    def link(self, uri: str, variant: Variant, ttl: float) -> Link | None:
        key = self._key_of(uri, variant)
        url = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(ttl)
        )
        return Link(url=url, expires_at=time.time() + int(ttl))

    def delete(self, uri: str) -> None:
        keys = [{"Key": self._key_of(uri, variant)} for variant in Variant]
        self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def delete_before(self, cutoff: float) -> int:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
        )
        deleted = 0
        for page in pages:
            for item in page.get("Contents", []):
                key: str = item["Key"]
                if key.endswith(".mp4") and item["LastModified"].timestamp() < cutoff:
                    try:
                        self.delete(self._uri(key))
                    except NotInStorage:  # a file in a sub-folder: not one of ours
                        continue
                    deleted += 1
        return deleted

    def _object_key(self, key: str) -> str:
        key = object_key(*key.split("/"))
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_object(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._object_key(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("store an object in", exc) from exc

    def read_object(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._object_key(key))["Body"]
            with body:
                data: bytes = body.read()
            return data
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"{key} is not in the storage") from exc
            raise self._failed("read from", exc) from exc
        except BotoCoreError as exc:
            raise self._failed("read from", exc) from exc

    def delete_object(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._failed("delete from", exc) from exc


def standard_client(endpoint: str | None) -> Any:
    """An S3 client from the standard AWS configuration, on ``endpoint`` (``storage.s3_endpoint``) with
    path-style addressing when there is one (an S3 server other than AWS's).

    What every S3 reader of Moviola uses (storage, adapter sources), so that one configuration serves all."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=60,
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    session = boto3.session.Session()
    return session.client(
        "s3", region_name=session.region_name or "us-east-1", endpoint_url=endpoint, config=config
    )
