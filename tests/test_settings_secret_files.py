"""Secrets from files (``settings.SECRET_FILES``): what a Kubernetes Secret volume gives a pod, so that no
secret is in a process's environment (deploy/eks mounts them; tests/test_deploy.py checks the manifests).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis
from harness.servers import RedisServer

from moviola.client import Client
from moviola.environment import with_password
from moviola.settings import Settings
from moviola.testing import ServerProcess

URL = "rediss://moviola@cache.example:6379/0"


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_redis_password_file_goes_into_the_urls_userinfo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trailing newline, as `kubectl create secret --from-file` keeps it; characters a URL must escape.
    monkeypatch.setenv("MOVIOLA_REDIS_PASSWORD_FILE", _file(tmp_path, "password", "p@ss/w:rd#1\n"))
    assert (
        Settings.of(redis_url=URL).queue.redis_url
        == "rediss://moviola:p%40ss%2Fw%3Ard%231@cache.example:6379/0"
    )
    client = redis.Redis.from_url(str(Settings.of(redis_url=URL).queue.redis_url))  # connects only when used
    assert client.connection_pool.connection_kwargs["password"] == "p@ss/w:rd#1"
    assert (
        Settings.of(redis_url="redis://h:6379/0").queue.redis_url == "redis://:p%40ss%2Fw%3Ard%231@h:6379/0"
    )


@pytest.mark.parametrize(
    ("options", "password", "refused"),
    [
        ({"redis_url": "redis://moviola:inline@h:6379/0"}, "p", "has a password already"),
        ({}, "p", "--redis-url, which is not given"),
    ],
)
def test_a_password_in_two_places_or_for_no_url_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str], password: str, refused: str
) -> None:
    monkeypatch.setenv("MOVIOLA_REDIS_PASSWORD_FILE", _file(tmp_path, "password", password))
    with pytest.raises(ValueError, match=refused):
        Settings.of(**options)


def test_a_missing_file_is_an_error_naming_the_variable_and_an_empty_one_gives_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOVIOLA_REDIS_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="MOVIOLA_REDIS_PASSWORD_FILE: cannot read the Redis password"):
        Settings.of(redis_url=URL)
    monkeypatch.setenv("MOVIOLA_REDIS_PASSWORD_FILE", _file(tmp_path, "empty", "\n"))
    assert Settings.of(redis_url=URL).queue.redis_url == URL  # dev's Redis: no password
    monkeypatch.setenv("MOVIOLA_WEBHOOK_SECRETS_FILE", _file(tmp_path, "none", ""))
    assert Settings.of().server.webhook_secrets == ()  # no webhooks


def test_webhook_secrets_come_from_their_file_several_while_rotating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOVIOLA_WEBHOOK_SECRETS_FILE", _file(tmp_path, "webhook", "whsec_new\nwhsec_old\n"))
    assert Settings.of().server.webhook_secrets == ("whsec_new", "whsec_old")
    with pytest.raises(ValueError, match="not both"):
        Settings.of(webhook_secrets=("whsec_flag",))


def test_without_the_variables_nothing_changes() -> None:
    assert Settings.of(redis_url=URL).queue.redis_url == URL
    assert Settings.of().server.webhook_secrets == ()


def test_with_password_keeps_the_rest_of_the_url() -> None:
    assert (
        with_password("rediss://u@h:1/2?ssl_ca_certs=/ca.pem", "x y")
        == "rediss://u:x%20y@h:1/2?ssl_ca_certs=/ca.pem"
    )


@pytest.mark.timeout(120)
def test_a_gateway_and_a_worker_reach_a_password_protected_redis_with_only_a_file(tmp_path: Path) -> None:
    """As prod runs them: the URL names the user, the password is a file; the Redis refuses anyone else."""
    with RedisServer(acl=("moviola", "s3cret/pass")) as server:
        url = f"redis://moviola@127.0.0.1:{server.port}/0"
        env = {"MOVIOLA_REDIS_PASSWORD_FILE": _file(tmp_path, "password", "s3cret/pass\n")}
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace("moviola@", "moviola:wrong@")).ping()
        worker = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
        with (
            ServerProcess(
                ["--redis-url", url, "--data-dir", str(tmp_path), "--model", "tiny-wan2.2-t2v"],
                program=worker,
                worker=True,
                env=env,
            ),
            ServerProcess(["--redis-url", url, "--data-dir", str(tmp_path)], env=env) as gateway,
            Client(gateway.address, timeout=60) as client,
        ):
            events = list(
                client.generate("a fox", model="tiny-wan2.2-t2v", num_frames=5, num_inference_steps=2)
            )
            assert events[-1].WhichOneof("kind") == "completed"
