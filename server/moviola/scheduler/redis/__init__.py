"""The Redis Streams job queue: many stateless gateways, one worker per GPU replica.

``keys`` names every key, ``lua`` holds the scripts that change state atomically,
``connection`` holds the client and translates its errors, ``codec`` encodes requests and events, ``feed`` fans live events out to a
gateway's watchers, ``front`` is the side gateways use, ``claims`` the side workers use, and ``queue`` joins them. Nothing
outside this package sees a Redis type.
"""

from moviola.scheduler.redis.queue import RedisJobQueue, Tuning

__all__ = ["RedisJobQueue", "Tuning"]
