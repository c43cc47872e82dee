"""How a ``moviola`` command reaches its server: address, API key and TLS, from flags or the environment.

``connection_options`` adds ``--server`` (the command's ``server`` argument) and ``--api-key``,
``--tls-ca``, ``--tls-cert``, ``--tls-key`` (kept in the click context, so that no command has
to carry them); ``connected(server)`` opens the client they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from moviola.client._core import DEFAULT_SERVER, Tls
from moviola.client._sync import Client
from moviola.client.errors import MoviolaError

F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"moviola.{param.name}"] = value
    return value


_PEM = click.Path(dir_okay=False, exists=True)
#: (flag, environment variable, type, help) of the options every command keeps in its context.
_REMEMBERED: tuple[tuple[str, str | None, Any, str], ...] = (
    ("--api-key", "MOVIOLA_API_KEY", None, "API key for a server with --auth-file (env MOVIOLA_API_KEY)."),
    (
        "--tls-ca",
        "MOVIOLA_TLS_CA",
        _PEM,
        "Connect with TLS, trusting this CA (PEM); --tls with the system's roots.",
    ),
    ("--tls-cert", "MOVIOLA_TLS_CERT", _PEM, "Client certificate (PEM) for mTLS."),
    ("--tls-key", "MOVIOLA_TLS_KEY", _PEM, "The client certificate's key (PEM)."),
)
_OPTIONS = [
    click.option(
        "--server",
        default=DEFAULT_SERVER,
        show_default=True,
        envvar="MOVIOLA_SERVER",
        help="HOST:PORT of a gateway.",
    ),
    *(
        click.option(flag, envvar=env, type=kind, expose_value=False, callback=_remember, help=text)
        for flag, env, kind, text in _REMEMBERED
    ),
    click.option(
        "--tls", "tls_on", is_flag=True, expose_value=False, callback=_remember, help="Connect with TLS."
    ),
]


def connection_options(func: F) -> F:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def fail(error: MoviolaError) -> click.ClickException:
    hint = f" (retry in {error.retry_after:.1f}s)" if error.retry_after else ""
    return click.ClickException(f"{error.code.name}: {error.message}{hint}")


def _tls(meta: dict[str, Any]) -> Tls | None:
    ca, cert, key = (meta.get(f"moviola.{name}") for name in ("tls_ca", "tls_cert", "tls_key"))
    if not (ca or cert or key or meta.get("moviola.tls_on")):
        return None
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    return Tls(ca=ca, cert=cert, key=key)


@contextmanager
def connected(server: str) -> Iterator[Client]:
    """A client of the gateway at SERVER; an error from it ends the command with one clear line."""
    meta = click.get_current_context().meta
    with Client(server, api_key=meta.get("moviola.api_key"), tls=_tls(meta)) as client:
        try:
            yield client
        except MoviolaError as error:
            raise fail(error) from error
