"""Opening the index ``--search-index`` names: a local folder, or a prefix on S3 (any S3 server)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from moviola.errors import FailedPrecondition
from moviola.search.lance import LanceIndex, WriteLock
from moviola.settings import SearchSettings, StorageSettings


def index_uri(url: str) -> str:
    """What LanceDB opens: ``s3://...`` as given, a folder (``file://`` or a path) made absolute.

    >>> index_uri("file:///var/lib/moviola/search")
    '/var/lib/moviola/search'
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"search index {url!r}: s3://BUCKET/PREFIX")
        return url.rstrip("/")
    if parsed.scheme == "file":
        return str(Path(parsed.path).absolute())
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"search index {url!r}: a folder, file:///PATH or s3://BUCKET/PREFIX")
    return str(Path(url).absolute())


def s3_options(storage: StorageSettings) -> dict[str, str]:
    """The object store's options: the S3 endpoint and region of the settings (what boto3 uses too).

    Credentials are left to the object store's own chain (environment, IRSA, instance profile).
    """
    options: dict[str, str] = {}
    endpoint = storage.s3_endpoint
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    if storage.s3_region:
        options["aws_region"] = storage.s3_region
    return options


def opener(
    settings: SearchSettings, lock: WriteLock, storage: StorageSettings
) -> Callable[[str], LanceIndex]:
    """What ``VideoSearch`` calls with the embedding model's name; ValueError when the URL is no index."""
    if settings.index_url is None:
        raise ValueError("no search index configured")
    if importlib.util.find_spec("lancedb") is None:
        raise FailedPrecondition(
            "--search-index needs LanceDB, which is not installed: pip install 'moviola[search]'"
        )
    uri = index_uri(settings.index_url)
    options = s3_options(storage) if uri.startswith("s3://") else {}
    if not uri.startswith("s3://"):
        Path(uri).mkdir(parents=True, exist_ok=True)
    return functools.partial(LanceIndex, uri, lock=lock, storage_options=options)
