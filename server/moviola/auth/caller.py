"""The caller of a request, as the auth interceptor found it.

The interceptor (``api/interceptors.py``) sets it for the duration of each call; servicers read it
with ``current()`` and pass it on explicitly, so that nothing below the API reads ambient state.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from moviola.quota import NO_LIMITS, Limits


@dataclass(frozen=True)
class Caller:
    #: The tenant the key belongs to; "" when the server runs without an auth file.
    tenant: str
    #: May list dead letters and requeue them.
    admin: bool = False
    #: The models the tenant may use; None: all.
    models: frozenset[str] | None = None
    #: The key's id (never its secret), for logs.
    key_id: str = ""
    #: The tenant's quota and fair-share weight.
    limits: Limits = NO_LIMITS
    #: The LoRA adapters the tenant may name; None: all.
    adapters: frozenset[str] | None = None

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def may_apply(self, adapter: str) -> bool:
        return self.adapters is None or adapter in self.adapters


#: Everyone, when the server has no auth file: today's behaviour (one shared space, operators included).
ANONYMOUS = Caller(tenant="", admin=True)

_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("moviola_caller", default=ANONYMOUS)


def current() -> Caller:
    return _current.get()


def set_current(caller: Caller) -> contextvars.Token[Caller]:
    return _current.set(caller)


def reset(token: contextvars.Token[Caller]) -> None:
    _current.reset(token)
