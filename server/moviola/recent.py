"""The value made for each of the last few objects, looked up by identity.

Thousands of streams watching one job send the same event objects (``scheduler/redis/watches.py``
shares them); what each stream makes of an event (its view with links, its protobuf message) is
then made once, not once per stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, make: Callable[[K], V], size: int = 128) -> None:
        self._make, self._size = make, size
        #: id(key) → (key, value); the key is held so that its id is not reused while it is here.
        self._made: dict[int, tuple[K, V]] = {}

    def __call__(self, key: K) -> V:
        hit = self._made.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
        value = self._make(key)
        self._made[id(key)] = (key, value)
        if len(self._made) > self._size:
            del self._made[next(iter(self._made))]  # the oldest
        return value
