"""``moviola auth``: create, revoke and list API keys, set a tenant's limits and webhook secrets, in an auth file.

Servers read the file at start and again on SIGHUP; these commands only edit it (atomically).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def auth() -> None:
    """Manage API keys in an auth file (servers re-read it on SIGHUP)."""


_auth_file = click.option(
    "--auth-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="MOVIOLA_AUTH_FILE",
    help="The auth file (created if missing).",
)


@auth.command("create-key")
@_auth_file
@click.option("--tenant", required=True, help="The tenant the key belongs to (created if new).")
@click.option("--admin", is_flag=True, help="The tenant may list and requeue dead letters.")
def create_key(auth_file: Path, tenant: str, admin: bool) -> None:
    """Add a key; print it (only the key, on stdout). It is stored hashed and shown only now."""
    from moviola.auth import keys

    try:
        key = keys.create_key(auth_file, tenant, admin=admin)
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"key {keys.key_id_of(key)} for tenant {tenant} added to {auth_file}; send SIGHUP to servers",
        err=True,
    )
    click.echo(key)


@auth.command("revoke-key")
@_auth_file
@click.argument("key")
def revoke_key(auth_file: Path, key: str) -> None:
    """Remove KEY (the key, or its id); servers refuse it once they re-read the file (SIGHUP)."""
    from moviola.auth import keys

    try:
        tenant = keys.revoke_key(auth_file, key)
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked key {keys.key_id_of(key)} of tenant {tenant}; send SIGHUP to servers", err=True)


@auth.command("list-keys")
@_auth_file
def list_keys(auth_file: Path) -> None:
    """Tenants and key ids (never the keys)."""
    from moviola.auth import keys

    for tenant, key_id, created, admin in keys.list_keys(auth_file):
        click.echo(f"{tenant}\t{key_id}\t{created}\t{'admin' if admin else ''}".rstrip())


@auth.command("allow")
@_auth_file
@click.option("--tenant", required=True, help="The tenant (created if new); its keys are kept.")
@click.option(
    "--model", "models", multiple=True, help="A model it may use (repeatable); the list is replaced."
)
@click.option(
    "--adapter", "adapters", multiple=True, help="A LoRA adapter it may name (repeatable); replaced."
)
@click.option("--any-model", is_flag=True, help="Drop its model list: every model.")
@click.option("--any-adapter", is_flag=True, help="Drop its adapter list: every adapter.")
def allow(
    auth_file: Path,
    tenant: str,
    models: tuple[str, ...],
    adapters: tuple[str, ...],
    any_model: bool,
    any_adapter: bool,
) -> None:
    """Set what a tenant may use: its models and LoRA adapters (lists not mentioned are kept)."""
    from moviola.auth import keys

    changes = {"models": (models, any_model), "adapters": (adapters, any_adapter)}
    if not any(names or every for names, every in changes.values()):
        raise click.UsageError("give --model, --adapter, --any-model or --any-adapter")
    try:
        for field, (names, every) in changes.items():
            if names and every:
                raise click.UsageError(f"--{field[:-1]} and --any-{field[:-1]} contradict each other")
            if names or every:
                keys.set_allowed(auth_file, tenant, field, None if every else list(names))
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"tenant {tenant}: allow-lists updated in {auth_file}; send SIGHUP to servers", err=True)


@auth.command("set-limits")
@_auth_file
@click.option("--tenant", required=True, help="The tenant (created if new); its keys are kept.")
@click.option(
    "--in-flight",
    type=click.IntRange(min=0),
    default=None,
    help="Jobs queued or running at once (0: no limit).",
)
@click.option(
    "--rate", type=click.FloatRange(min=0), default=None, help="Submits per second, sustained (0: no limit)."
)
@click.option(
    "--burst",
    type=click.IntRange(min=0),
    default=None,
    help="Submits at once above the rate (default: the rate, at least 1).",
)
@click.option(
    "--weight",
    type=click.FloatRange(min=0.01, max=100),
    default=None,
    help="Share of the workers when tenants compete (default 1).",
)
def set_limits(
    auth_file: Path,
    tenant: str,
    in_flight: int | None,
    rate: float | None,
    burst: int | None,
    weight: float | None,
) -> None:
    """Set a tenant's quota and fair-share weight; options not given are kept."""
    from moviola.auth import keys

    given = {"in_flight": in_flight, "rate": rate, "burst": burst, "weight": weight}
    try:
        limits = keys.set_limits(auth_file, tenant, {k: v for k, v in given.items() if v is not None})
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"tenant {tenant}: {limits.describe()}; send SIGHUP to servers", err=True)


@auth.command("add-webhook-secret")
@_auth_file
@click.option("--tenant", required=True, help="The tenant (created if new).")
def add_webhook_secret(auth_file: Path, tenant: str) -> None:
    """Add a secret that signs the tenant's webhooks (instead of the server's); print it.

    Older secrets keep signing too, so receivers can move to the new one; then
    `retire-webhook-secrets` drops them.
    """
    from moviola.auth import keys

    try:
        secret = keys.add_webhook_secret(auth_file, tenant)
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"webhook secret added for tenant {tenant}; send SIGHUP to servers", err=True)
    click.echo(secret)


@auth.command("retire-webhook-secrets")
@_auth_file
@click.option("--tenant", required=True, help="The tenant.")
def retire_webhook_secrets(auth_file: Path, tenant: str) -> None:
    """Keep only the tenant's newest webhook secret."""
    from moviola.auth import keys

    try:
        removed = keys.retire_webhook_secrets(auth_file, tenant)
    except keys.AuthFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"removed {removed} older webhook secrets of tenant {tenant}; send SIGHUP to servers", err=True
    )
