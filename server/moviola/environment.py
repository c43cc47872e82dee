"""What the process's environment says, read for ``moviola.settings`` and nowhere else.

The XDG folders, the AWS S3 endpoint and region, and the secrets ``SECRET_FILES`` name
(files, such as a mounted Kubernetes Secret, so that no secret sits in a process's environment).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

#: Secrets that ``Settings.of`` reads from files (a Kubernetes Secret mounted as a volume), so that they are
#: in no process's environment: each variable names a file. Read at start; an empty file gives nothing.
SECRET_FILES = {
    # Put into the Redis URL's userinfo (the URL, from --redis-url, names the user if any).
    "MOVIOLA_REDIS_PASSWORD_FILE": "the Redis password",
    # Whitespace-separated, as the variable MOVIOLA_WEBHOOK_SECRETS; instead of --webhook-secret.
    "MOVIOLA_WEBHOOK_SECRETS_FILE": "the webhook signing secrets",
}


def xdg(variable: str, fallback: str) -> Path:
    """Moviola's folder under the XDG folder ``variable`` names, else under ``~/fallback``."""
    return Path(os.environ.get(variable) or Path.home() / fallback) / "moviola"


def environment(*variables: str) -> str | None:
    """The first of ``variables`` set (and not empty) in the environment."""
    return next((os.environ[v] for v in variables if os.environ.get(v)), None)


def secret_file(variable: str) -> str | None:
    """The contents of the file that ``variable`` names, stripped; None when it is unset."""
    path = os.environ.get(variable)
    if not path:
        return None
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(
            f"{variable}: cannot read {SECRET_FILES[variable]} from {path}: {exc.strerror}"
        ) from exc


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in its userinfo, percent-encoded; ValueError where it has one already.

    >>> with_password("rediss://moviola@cache.example:6379/0", "p@ss")
    'rediss://moviola:p%40ss@cache.example:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError("the Redis URL has a password already: give it in one place")
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def secrets_from_files(
    redis_url: str | None, webhook_secrets: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """The Redis URL with the password ``MOVIOLA_REDIS_PASSWORD_FILE`` holds, and the webhook secrets
    ``MOVIOLA_WEBHOOK_SECRETS_FILE`` holds (whitespace-separated); ValueError where a secret is given twice
    or names nothing."""
    password = secret_file("MOVIOLA_REDIS_PASSWORD_FILE")
    if password:
        if redis_url is None:
            raise ValueError("MOVIOLA_REDIS_PASSWORD_FILE is the password of --redis-url, which is not given")
        redis_url = with_password(redis_url, password)
    secrets = secret_file("MOVIOLA_WEBHOOK_SECRETS_FILE")
    if secrets is not None:
        if webhook_secrets:
            raise ValueError(
                "webhook secrets: give --webhook-secret or MOVIOLA_WEBHOOK_SECRETS_FILE, not both"
            )
        webhook_secrets = tuple(secrets.split())
    return redis_url, webhook_secrets
