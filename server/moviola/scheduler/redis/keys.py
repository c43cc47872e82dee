"""Every Redis key Moviola uses, in one place.

All keys share one prefix (``moviola:`` unless ``--redis-prefix`` says otherwise), so that
one Redis can hold several deployments, or other applications, without any of them seeing
another's keys, and ``SCAN <prefix>*`` shows everything of one deployment. The Lua scripts
are given the prefix and derive the per-job names from it the same way.
"""

from __future__ import annotations

from moviola.jobs import Priority
from moviola.settings import check_redis_prefix, default_of

#: The prefix when none is configured (``QueueSettings.redis_prefix``, where it is checked too).
DEFAULT_PREFIX: str = default_of("redis_prefix")

#: Consumer group of the workers on every queue stream.
GROUP = "workers"

#: Entries of the feed stream (every job's events as published: job id, sequence, time, kind), capped
#: so: each gateway tails it with one blocking read for all its watchers.
FEED_LENGTH = 20_000
#: A queue entry handed back by a stopping worker stays pending, marked idle this long (11.6 days,
#: longer than any lease): the next free worker takes it before anything that has not started.
HANDED_BACK_IDLE_MS = 10**9
#: Consumer group of a model's wake stream whose lag is the model's backlog (queued jobs): what
#: autoscalers read (KEDA ``redis-streams``, ``lagCount``). See ``lua_functions.unbacklog``.
BACKLOG_GROUP = "backlog"


class Keys:
    """The names of one deployment's keys."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = check_redis_prefix(prefix)
        #: Stream of every job's events as published (``FEED_LENGTH`` entries).
        self.feed = f"{prefix}feed"
        #: Stream of jobs given up on, with their last error; operators list and requeue them.
        self.dead_letters = f"{prefix}dead-letters"
        #: Sorted set: queued jobs with a start_by time, scored by it; gateways sweep the overdue ones.
        self.deadlines = f"{prefix}deadlines"
        #: Hash: per tenant, its jobs queued or running (the in-flight quota), kept by the scripts.
        self.in_flight = f"{prefix}in-flight"
        #: String: the lock each commit to the shared search index takes (``locks.RedisLock``).
        self.search_index_lock = f"{prefix}search-index:lock"

    def job(self, job_id: str) -> str:
        """Hash: the request, its state and counters (sequence, attempts), tenant, the stream entry once claimed."""
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        """Stream of a job's events; entry ID ``<sequence>-0``, so that resuming after N is ``XREAD ... N-0``."""
        return f"{self.prefix}events:{job_id}"

    def queue(self, model: str, priority: Priority) -> str:
        """Stream of ``model``'s claimed jobs of one priority class, read by group ``GROUP``.

        Its jobs not yet claimed wait in the sorted set ``<queue>:waiting`` (fair-share order), and
        ``<queue>:fair`` is the hash of its fair-share clock (see ``lua_functions``).
        """
        return f"{self.prefix}queue:{model}:{priority.name.lower()}"

    def waiting(self, model: str, priority: Priority) -> str:
        """Sorted set: the jobs of ``queue(model, priority)`` waiting to be claimed, by fair-share tag."""
        return f"{self.queue(model, priority)}:waiting"

    def wake(self, model: str) -> str:
        """Stream: an entry per job queued or handed back; idle workers block reading it.

        Its group ``BACKLOG_GROUP`` lags by the model's queued jobs (KEDA scales workers on it).
        """
        return f"{self.prefix}wake:{model}"

    def tenant_jobs(self, tenant: str) -> str:
        """Sorted set: a tenant's job ids by creation time (ListJobs), trimmed to the retention at each submit."""
        return f"{self.prefix}tenant-jobs:{tenant}"

    def rate(self, tenant: str) -> str:
        """Hash: a tenant's submit token bucket (tokens, at), expiring once full again."""
        return f"{self.prefix}rate:{tenant}"

    def idempotency(self, key: str) -> str:
        """String: the job id first submitted with this idempotency key (expires with the job)."""
        return f"{self.prefix}idempotency:{key}"

    def workers(self, model: str) -> str:
        """Sorted set: worker name scored by its last heartbeat (unix seconds); live ones serve ``model``."""
        return f"{self.prefix}workers:{model}"

    def stats(self, model: str) -> str:
        """Hash: per size class, ``c:<class>`` the moving average of run seconds and ``n:<class>`` the runs seen."""
        return f"{self.prefix}stats:{model}"


#: The keys of a deployment with the default prefix.
DEFAULT = Keys()
