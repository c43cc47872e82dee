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
one reader of the shared feed (``feed``).

``keys`` names every key and group, ``lua`` holds the scripts that change state atomically (the
functions they share in ``lua_functions``), ``contract`` what Python and the scripts agree on
(result codes, SUBMIT's arguments, the Lua generated from both), ``connection`` the client, keys
and scripts of one process and the one place Redis errors are translated, ``codec`` encodes
requests and events. A process builds one ``Connection`` and the parts it needs on it:
``RedisFront`` (``front``: what gateways use, with ``webhooks`` and ``completions``) and
``RedisClaims`` (``claims``: what workers use). Nothing outside this package sees a Redis type.

    connection = Connection(settings.queue, consumer="gateway")
    front = RedisFront(connection)
    ...
    await front.close()
    await connection.close()
"""

from moviola.scheduler.redis.claims import RedisClaims
from moviola.scheduler.redis.connection import Connection, Tuning
from moviola.scheduler.redis.front import RedisFront

__all__ = ["Connection", "RedisClaims", "RedisFront", "Tuning"]
