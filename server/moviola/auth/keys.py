"""API keys per tenant, kept hashed in one JSON file that ``moviola auth`` edits and servers read.

    {"limits": {"in_flight": 20},
     "tenants": {"acme": {"admin": false, "models": ["wan2.2-t2v-a14b"], "adapters": ["ink-wash"],
                          "limits": {"in_flight": 50, "rate": 2, "burst": 10, "weight": 2},
                          "keys": [{"id": "3f9a0c1d2b4e", "sha256": "...", "created": "2026-12-03T10:00:00Z"}],
                          "webhook_secrets": ["whsec_..."]}}}

``models`` and ``adapters`` (LoRA adapter names) are allow-lists; absent: every one.
``limits`` (``moviola.quota.Limits``) at the top apply to every tenant without its own.
``webhook_secrets`` sign that tenant's webhooks instead of the server's ``--webhook-secret``
(every one signs, newest last: ``moviola auth add-webhook-secret`` then ``retire-webhook-secrets``
rotate them). Unlike keys they are kept in plain text, since signing needs them: hence mode 0600.

A key is ``mvk_<id>_<secret>``: the id finds the entry, the secret (32 random bytes) is checked
against its SHA-256 in constant time. The plain key is printed once, at creation, and never stored.
A fast hash is enough for random 256-bit secrets (there is nothing to brute-force); it keeps
every call's check in microseconds. The file is rewritten whole (temporary file, fsync, rename)
with mode 0600, so a server reading it on SIGHUP never sees half a file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from moviola.auth.caller import Caller
from moviola.quota import NO_LIMITS, Limits

_KEY = re.compile(r"^mvk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_WEBHOOK_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{22,}={0,2}$")


class AuthFileError(ValueError):
    """The auth file is unreadable or malformed; the message says where."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    caller: Caller
    sha256: str


class Keyring:
    """The keys of one auth file, as loaded."""

    def __init__(
        self,
        entries: dict[str, _Entry],
        tenants: int,
        webhook_secrets: dict[str, tuple[str, ...]] | None = None,
        members: tuple[Caller, ...] = (),
    ) -> None:
        self._entries = entries
        self.tenants = tenants
        self._webhook_secrets = webhook_secrets or {}
        #: Each tenant as its keys' caller (admin, models, limits), without a key id: the operator's view.
        self.members = members

    def webhook_secrets(self, tenant: str) -> tuple[str, ...]:
        """The secrets that sign ``tenant``'s webhooks; empty: the server's."""
        return self._webhook_secrets.get(tenant, ())

    @property
    def keys(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> Caller | None:
        """The caller a presented key belongs to, or None (malformed, unknown, revoked or wrong secret)."""
        match = _KEY.match(token)
        if match is None:
            return None
        entry = self._entries.get(match.group(1))
        if entry is None:
            hmac.compare_digest(_digest(match.group(2)), "0" * 64)  # the same work either way
            return None
        return entry.caller if hmac.compare_digest(_digest(match.group(2)), entry.sha256) else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"tenants": {}}
    except (OSError, ValueError) as exc:
        raise AuthFileError(f"cannot read the auth file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), dict):
        raise AuthFileError(f"{path}: expected an object with a 'tenants' object")
    return data


def load(path: Path) -> Keyring:
    """Read the auth file; ``AuthFileError`` naming the tenant or key that is wrong."""
    if not path.exists():
        raise AuthFileError(f"the auth file {path} does not exist (create a key: moviola auth create-key)")
    entries: dict[str, _Entry] = {}
    webhook_secrets: dict[str, tuple[str, ...]] = {}
    members: list[Caller] = []
    data = _read(path)
    tenants = data["tenants"]
    default = _limits(data.get("limits"), f"{path}: top-level", NO_LIMITS)
    for name, tenant in tenants.items():
        where = f"{path}: tenant {name!r}"
        if not _TENANT.match(name) or not isinstance(tenant, dict):
            raise AuthFileError(f"{where}: bad name or entry")
        caller = Caller(
            tenant=name,
            admin=bool(tenant.get("admin", False)),
            models=_names(tenant, "models", where),
            limits=_limits(tenant.get("limits"), where, default),
            adapters=_names(tenant, "adapters", where),
        )
        members.append(caller)
        if signing := _webhook_secrets(tenant.get("webhook_secrets", []), where):
            webhook_secrets[name] = signing
        for key in tenant.get("keys", []):
            if not (isinstance(key, dict) and re.fullmatch(r"[0-9a-f]{12}", str(key.get("id")))):
                raise AuthFileError(f"{where}: a key without a valid 'id'")
            if not re.fullmatch(r"[0-9a-f]{64}", str(key.get("sha256"))):
                raise AuthFileError(f"{where}: key {key['id']} has no valid 'sha256'")
            if key["id"] in entries:
                raise AuthFileError(f"{where}: key id {key['id']} appears twice")
            entries[key["id"]] = _Entry(replace(caller, key_id=key["id"]), key["sha256"])
    return Keyring(entries, len(tenants), webhook_secrets, tuple(members))


def _names(tenant: dict[str, Any], field: str, where: str) -> frozenset[str] | None:
    """An allow-list (``models``, ``adapters``): a list of names, or absent for all."""
    names = tenant.get(field)
    if names is None:
        return None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise AuthFileError(f"{where}: '{field}' must be a list of names")
    return frozenset(names)


def _webhook_secrets(data: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(data, list) and all(_WEBHOOK_SECRET.match(str(s)) for s in data)):
        raise AuthFileError(f"{where}: 'webhook_secrets' must be a list of whsec_<base64> secrets")
    return tuple(data)


def _limits(data: Any, where: str, default: Limits) -> Limits:
    if data is None:
        return default
    try:
        return Limits.of(data)
    except ValueError as exc:
        raise AuthFileError(f"{where}: {exc}") from exc


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def create_key(path: Path, tenant: str, *, admin: bool = False) -> str:
    """Add a key for ``tenant`` (created with it if new); return the plain key, the only time it exists."""
    if not _TENANT.match(tenant):
        raise AuthFileError(f"tenant names are letters, digits, '.', '_' and '-' (up to 63): {tenant!r}")
    data = _read(path)
    entry = data["tenants"].setdefault(tenant, {"admin": False, "keys": []})
    if admin:
        entry["admin"] = True
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry.setdefault("keys", []).append({"id": key_id, "sha256": _digest(secret), "created": created})
    _write(path, data)
    return f"mvk_{key_id}_{secret}"


def set_limits(path: Path, tenant: str, changes: dict[str, float]) -> Limits:
    """Change some of ``tenant``'s limits (created if new); return them all. ``AuthFileError`` if invalid."""
    if not _TENANT.match(tenant):
        raise AuthFileError(f"tenant names are letters, digits, '.', '_' and '-' (up to 63): {tenant!r}")
    data = _read(path)
    entry = data["tenants"].setdefault(tenant, {"admin": False, "keys": []})
    limits = _limits({**entry.get("limits", {}), **changes}, f"tenant {tenant!r}", NO_LIMITS)
    entry["limits"] = limits.as_dict()
    _write(path, data)
    return limits


def _tenant_entry(data: dict[str, Any], tenant: str) -> dict[str, Any]:
    if not _TENANT.match(tenant):
        raise AuthFileError(f"tenant names are letters, digits, '.', '_' and '-' (up to 63): {tenant!r}")
    entry: dict[str, Any] = data["tenants"].setdefault(tenant, {"admin": False, "keys": []})
    return entry


def set_allowed(path: Path, tenant: str, field: str, names: list[str] | None) -> None:
    """Set ``tenant``'s allow-list ``field`` (``models`` or ``adapters``); None: every one."""
    if field not in ("models", "adapters"):
        raise AuthFileError(f"no allow-list {field!r} (models, adapters)")
    data = _read(path)
    entry = _tenant_entry(data, tenant)
    if names is None:
        entry.pop(field, None)
    else:
        entry[field] = sorted(set(names))
    _write(path, data)


def add_webhook_secret(path: Path, tenant: str) -> str:
    """A new signing secret for ``tenant``'s webhooks (its older ones keep signing); returned."""
    data = _read(path)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    _tenant_entry(data, tenant).setdefault("webhook_secrets", []).append(secret)
    _write(path, data)
    return secret


def retire_webhook_secrets(path: Path, tenant: str) -> int:
    """Keep only ``tenant``'s newest webhook secret; return how many were removed."""
    data = _read(path)
    entry = _tenant_entry(data, tenant)
    kept = entry.get("webhook_secrets", [])[-1:]
    removed = len(entry.get("webhook_secrets", [])) - len(kept)
    entry["webhook_secrets"] = kept
    _write(path, data)
    return removed


def key_id_of(key_or_id: str) -> str:
    """The id part of a key, or the id itself."""
    match = _KEY.match(key_or_id)
    return match.group(1) if match else key_or_id


def revoke_key(path: Path, key_or_id: str) -> str:
    """Remove a key (given whole or by its id); return its tenant. ``AuthFileError`` when it is not there."""
    key_id = key_id_of(key_or_id)
    data = _read(path)
    for name, tenant in data["tenants"].items():
        kept = [k for k in tenant.get("keys", []) if k.get("id") != key_id]
        if len(kept) != len(tenant.get("keys", [])):
            tenant["keys"] = kept
            _write(path, data)
            return str(name)
    raise AuthFileError(f"no key {key_id} in {path}")


def list_keys(path: Path) -> list[tuple[str, str, str, bool]]:
    """(tenant, key id, created, admin) for every key."""
    return [
        (name, str(k.get("id")), str(k.get("created", "")), bool(t.get("admin", False)))
        for name, t in _read(path)["tenants"].items()
        for k in t.get("keys", [])
    ]


class AuthFile:
    """The auth file a server checks keys against; ``reload()`` (on SIGHUP) swaps keys without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keyring = load(path)

    def reload(self) -> Keyring:
        """Read the file again; on an error keep the keys in use and raise ``AuthFileError``."""
        self.keyring = load(self.path)
        return self.keyring

    def verify(self, token: str) -> Caller | None:
        return self.keyring.verify(token)

    def webhook_secrets(self, tenant: str) -> tuple[str, ...]:
        return self.keyring.webhook_secrets(tenant)
