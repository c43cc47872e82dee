"""A tenant's limits: jobs in flight, a submit rate (token bucket), and its weight in fair share.

They come from the auth file (``moviola auth set-limits``); both queues enforce them at submit,
the Redis one in its SUBMIT script (so the limit holds across every gateway), with the same
rule and the same refusals as ``TokenBucket`` and ``refusal`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from moviola.errors import ResourceExhausted

#: Widest weight: a tenant gets at most this many times another's share.
MAX_WEIGHT = 100.0


@dataclass(frozen=True)
class Limits:
    #: Jobs queued or running at once; 0: no limit.
    in_flight: int = 0
    #: Submits per second, sustained; 0: no limit.
    rate: float = 0.0
    #: Submits at once above the rate; 0: the rate rounded up, at least 1.
    burst: int = 0
    #: Share of the workers against other tenants' jobs of the same priority (fair share).
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.in_flight < 0 or self.burst < 0 or not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ValueError("in_flight, rate and burst must be at least 0")
        if not (1 / MAX_WEIGHT <= self.weight <= MAX_WEIGHT):
            raise ValueError(f"weight must be between {1 / MAX_WEIGHT:g} and {MAX_WEIGHT:g}")

    @property
    def bucket(self) -> int:
        """The token bucket's size."""
        return self.burst or max(1, math.ceil(self.rate))

    def describe(self) -> str:
        in_flight = f"{self.in_flight} in flight" if self.in_flight else "no in-flight limit"
        rate = f"{self.rate:g}/s (burst {self.bucket})" if self.rate else "no rate limit"
        return f"{in_flight}, {rate}, weight {self.weight:g}"

    @classmethod
    def of(cls, data: Any) -> Limits:
        """From the auth file's ``limits`` object; ValueError saying what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("'limits' must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown limits {unknown} (known: {sorted(known)})")
        for name, value in data.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"limit {name!r} must be a number")
        if any(
            isinstance(data.get(n), float) and not float(data[n]).is_integer() for n in ("in_flight", "burst")
        ):
            raise ValueError("'in_flight' and 'burst' must be whole numbers")
        return cls(
            in_flight=int(data.get("in_flight", 0)),
            rate=float(data.get("rate", 0.0)),
            burst=int(data.get("burst", 0)),
            weight=float(data.get("weight", 1.0)),
        )

    def as_dict(self) -> dict[str, float]:
        default = Limits()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


NO_LIMITS = Limits()


class TokenBucket:
    """``bucket`` tokens, refilled at ``rate`` a second; a submit takes one."""

    def __init__(self, rate: float, bucket: int, now: float) -> None:
        self.rate, self.size = rate, bucket
        self.tokens, self.at = float(bucket), now

    def wait(self, now: float) -> float:
        """0 when a token is there (and not taken yet); else seconds until one is."""
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class TenantBuckets:
    """One token bucket per tenant, in one process (the embedded queue; Redis keeps them in its script)."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def of(self, tenant: str, limits: Limits, now: float) -> TokenBucket | None:
        """The tenant's bucket, made anew when its limits changed (SIGHUP); None without a rate."""
        if not limits.rate:
            self._buckets.pop(tenant, None)
            return None
        bucket = self._buckets.get(tenant)
        if bucket is None or (bucket.rate, bucket.size) != (limits.rate, limits.bucket):
            bucket = self._buckets[tenant] = TokenBucket(limits.rate, limits.bucket, now)
        return bucket


def over_in_flight(tenant: str, count: int, limits: Limits, retry_after: float) -> ResourceExhausted:
    return ResourceExhausted(
        f"tenant {tenant} has {count} jobs queued or running, its limit ({limits.in_flight}); "
        "submit again when one ends",
        retry_after=retry_after,
    )


def over_rate(tenant: str, limits: Limits, retry_after: float) -> ResourceExhausted:
    return ResourceExhausted(
        f"tenant {tenant} submits faster than its limit ({limits.rate:g} a second, burst {limits.bucket}); "
        f"retry in {retry_after:.2f}s",
        retry_after=retry_after,
    )
