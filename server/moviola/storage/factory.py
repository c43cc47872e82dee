"""The storage a process uses, from one setting: ``--storage-url`` (``file:///PATH`` or ``s3://BUCKET/PREFIX``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from moviola.settings import StorageSettings
from moviola.storage.base import Storage
from moviola.storage.local import LocalStorage


def open_storage(settings: StorageSettings) -> Storage:
    """Local disk (``DATA_DIR/videos`` by default) or S3; ValueError naming the setting when it is neither."""
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.data_dir / "videos")
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost") and parsed.path:
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        from moviola.storage.s3 import S3Storage

        return S3Storage(url, endpoint=settings.s3_endpoint)
    raise ValueError(f"storage_url must be file:///PATH or s3://BUCKET/PREFIX, not {url!r}")
