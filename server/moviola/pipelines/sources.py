"""Where an adapter's files are: a local path, ``builtin:NAME``, ``s3://BUCKET/KEY`` or a hub id.

``locate`` turns a source into what ``load_lora_weights`` takes: a local path, or a hub id it
resolves itself (from the local Hugging Face cache, or the hub unless ``HF_HUB_OFFLINE`` is set).
An S3 object, or every object under an S3 prefix ending in ``/``, is fetched once into the cache
folder with boto3 (credentials from the standard AWS chain, the endpoint ``storage.s3_endpoint``), so a
restarted worker does not fetch it again.
"""

from __future__ import annotations

from pathlib import Path

from moviola.catalog import BUILTIN_PREFIX
from moviola.errors import Unavailable


def is_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "file://")) or Path(source).exists()


def locate(source: str, cache_dir: Path, s3_endpoint: str | None = None) -> str:
    """A local path or hub id for ``source``; builtin adapters are built, S3 objects fetched."""
    if source.startswith(BUILTIN_PREFIX):
        from moviola.pipelines.tiny_lora import ensure_built

        return str(ensure_built(cache_dir, source.removeprefix(BUILTIN_PREFIX)))
    if source.startswith("s3://"):
        return str(fetch_s3(source, cache_dir / "adapters" / "s3", s3_endpoint))
    if source.startswith("file://"):
        return source.removeprefix("file://")
    return source


def fetch_s3(url: str, cache: Path, endpoint: str | None) -> Path:
    """The local copy of ``s3://BUCKET/KEY`` (a file) or ``s3://BUCKET/PREFIX/`` (a folder), fetched once.

    ``Unavailable`` when S3 cannot be reached (a retry may work); a missing object is a ``FileNotFoundError``.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from moviola.storage.s3 import standard_client

    bucket, _, key = url.removeprefix("s3://").partition("/")
    target = cache / bucket / key
    if target.exists() and (target.is_file() or any(target.iterdir())):
        return target
    client = standard_client(endpoint)
    try:
        keys = [key]
        if key.endswith("/") or not key:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
            keys = [str(item["Key"]) for item in listed if not str(item["Key"]).endswith("/")]
            if not keys:
                raise FileNotFoundError(f"{url}: no objects under this prefix")
        for name in keys:
            local = cache / bucket / name
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(local.name + ".partial")
            client.download_file(bucket, name, str(partial))
            partial.rename(local)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise FileNotFoundError(f"{url}: {code}") from exc
        raise Unavailable(f"{url}: {exc}", retry_after=5.0) from exc
    except BotoCoreError as exc:
        raise Unavailable(f"{url}: {exc}", retry_after=5.0) from exc
    return target
