"""The Redis Streams job queue: many stateless gateways, one worker per GPU replica.

Each model has two queue streams (interactive, batch) read by one consumer
group; a worker reads only when it is free, which is the backpressure towards
the GPUs. A delivered entry stays in the group's pending list until the
worker acknowledges it, and the worker renews it while it runs: that is its
lease. Entries whose lease ran out (the worker died) are taken over and run
again from the start; after ``max_attempts`` a job goes to the dead-letter
stream instead. Queued jobs whose ``start_by`` passes fail (any gateway sweeps).

Every job has a hash (request, state, counters) and an event stream whose IDs
are the events' sequence numbers, so any gateway can serve ``WatchJob`` and
resume after any sequence; live events reach a gateway's watchers through its
one reader of the shared feed (``feed``). State changes are Lua scripts
(``lua``); ``front`` is what gateways use, ``claims`` what workers use.
"""

from __future__ import annotations

from moviola.scheduler.redis.claims import ClaimSide
from moviola.scheduler.redis.completions import CompletionSide
from moviola.scheduler.redis.connection import Tuning
from moviola.scheduler.redis.front import FrontSide
from moviola.scheduler.redis.webhooks import WebhookSide


class RedisJobQueue(FrontSide, ClaimSide, WebhookSide, CompletionSide):
    """Both sides: a gateway uses the front, a worker its claims (and ``ping`` and ``close``)."""


__all__ = ["RedisJobQueue", "Tuning"]
