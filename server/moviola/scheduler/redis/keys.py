"""Every Redis key and consumer group Moviola uses, in one place.

All keys share one prefix (``moviola:`` unless ``--redis-prefix`` says otherwise), so that
one Redis can hold several deployments, or other applications, without any of them seeing
another's keys, and ``SCAN <prefix>*`` shows everything of one deployment.

``LAYOUT`` is the one definition of the names: ``Keys`` builds them in Python, and the scripts
build the same names with ``K``, a Lua table generated from ``LAYOUT`` (``contract.lua_keys``)
from the prefix each script is given. What each key holds is said on ``Keys``.
"""

from __future__ import annotations

from string import Formatter

from moviola.jobs import Priority
from moviola.settings import check_redis_prefix, default_of

#: The prefix when none is configured (``QueueSettings.redis_prefix``, where it is checked too).
DEFAULT_PREFIX: str = default_of("redis_prefix")

#: Every key's name after the prefix; ``{field}`` is filled in per job, model, tenant or delivery.
LAYOUT: dict[str, str] = {
    "feed": "feed",
    "dead_letters": "dead-letters",
    "deadlines": "deadlines",
    "in_flight": "in-flight",
    "search_index_lock": "search-index:lock",
    "webhooks_due": "webhooks:due",
    "job": "job:{job_id}",
    "events": "events:{job_id}",
    "queue": "queue:{model}:{priority}",
    "wake": "wake:{model}",
    "workers": "workers:{model}",
    "stats": "stats:{model}",
    "tenant_jobs": "tenant-jobs:{tenant}",
    "rate": "rate:{tenant}",
    "idempotency": "idempotency:{key}",
    "webhook": "webhook:{delivery_id}",
}

#: Keys named after a queue stream (``queue``): its waiting set and its fair-share clock.
QUEUE_PARTS: dict[str, str] = {"waiting": ":waiting", "fair": ":fair"}

#: Consumer group of the workers on every queue stream.
GROUP = "workers"
#: Consumer group of a model's wake stream whose lag is the model's backlog (queued jobs): what
#: autoscalers read (KEDA ``redis-streams``, ``lagCount``). See ``lua_functions.unbacklog``.
BACKLOG_GROUP = "backlog"
#: Consumer group of a model's wake stream that idle workers block on (``XREADGROUP``, ``NOACK``):
#: Redis hands each entry (a job queued or handed back) to one blocked worker, so a submit wakes one
#: idle worker of the model, not all of them.
WAKE_GROUP = "wakers"
#: Consumer group of the search indexers on the feed (``completions``).
INDEX_GROUP = "indexers"

#: Entries of the feed stream (every job's events as published: job id, sequence, time, kind), capped
#: so: each gateway tails it with one blocking read for all its watchers.
FEED_LENGTH = 20_000
#: A queue entry handed back by a stopping worker stays pending, marked idle this long (11.6 days,
#: longer than any lease): the next free worker takes it before anything that has not started.
HANDED_BACK_IDLE_MS = 10**9


def fields_of(name: str) -> list[str]:
    """The fields a key's name is made of, in order: ``fields_of("job") == ["job_id"]``."""
    return [field for _, field, _, _ in Formatter().parse(LAYOUT[name]) if field]


class Keys:
    """The names of one deployment's keys."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = check_redis_prefix(prefix)
        #: Stream of every job's events as published (``FEED_LENGTH`` entries).
        self.feed = self._name("feed")
        #: Stream of jobs given up on, with their last error; operators list and requeue them.
        self.dead_letters = self._name("dead_letters")
        #: Sorted set: queued jobs with a start_by time, scored by it; gateways sweep the overdue ones.
        self.deadlines = self._name("deadlines")
        #: Hash: per tenant, its jobs queued or running (the in-flight quota), kept by the scripts.
        self.in_flight = self._name("in_flight")
        #: String: the lock each commit to the shared search index takes (``locks.RedisLock``).
        self.search_index_lock = self._name("search_index_lock")
        #: Sorted set: webhook delivery ids by the time they are due (the outbox, ``webhooks``).
        self.webhooks_due = self._name("webhooks_due")

    def _name(self, name: str, **fields: str) -> str:
        return self.prefix + LAYOUT[name].format(**fields)

    def job(self, job_id: str) -> str:
        """Hash: the request, its state and counters (sequence, attempts), tenant, the stream entry once claimed."""
        return self._name("job", job_id=job_id)

    def events(self, job_id: str) -> str:
        """Stream of a job's events; entry ID ``<sequence>-0``, so that resuming after N is ``XREAD ... N-0``."""
        return self._name("events", job_id=job_id)

    def queue(self, model: str, priority: Priority) -> str:
        """Stream of ``model``'s claimed jobs of one priority class, read by group ``GROUP``.

        Its jobs not yet claimed wait in ``waiting`` (fair-share order), and ``fair`` is the hash
        of its fair-share clock (see ``lua_functions``).
        """
        return self._name("queue", model=model, priority=priority.name.lower())

    def waiting(self, model: str, priority: Priority) -> str:
        """Sorted set: the jobs of ``queue(model, priority)`` waiting to be claimed, by fair-share tag."""
        return self.queue(model, priority) + QUEUE_PARTS["waiting"]

    def fair(self, model: str, priority: Priority) -> str:
        """Hash: the fair-share clock of ``queue(model, priority)`` (virtual time, each tenant's last tag)."""
        return self.queue(model, priority) + QUEUE_PARTS["fair"]

    def wake(self, model: str) -> str:
        """Stream: an entry per job queued or handed back; idle workers block reading it.

        Its group ``BACKLOG_GROUP`` lags by the model's queued jobs (KEDA scales workers on it).
        """
        return self._name("wake", model=model)

    def workers(self, model: str) -> str:
        """Sorted set: worker name scored by its last heartbeat (unix seconds); live ones serve ``model``."""
        return self._name("workers", model=model)

    def stats(self, model: str) -> str:
        """Hash: per size class, ``c:<class>`` the moving average of run seconds and ``n:<class>`` the runs seen."""
        return self._name("stats", model=model)

    def tenant_jobs(self, tenant: str) -> str:
        """Sorted set: a tenant's job ids by creation time (ListJobs), trimmed to the retention at each submit."""
        return self._name("tenant_jobs", tenant=tenant)

    def rate(self, tenant: str) -> str:
        """Hash: a tenant's submit token bucket (tokens, at), expiring once full again."""
        return self._name("rate", tenant=tenant)

    def idempotency(self, key: str) -> str:
        """String: the job id first submitted with this idempotency key (expires with the job)."""
        return self._name("idempotency", key=key)

    def webhook(self, delivery_id: str) -> str:
        """Hash: a webhook delivery (URL, tenant, job, the event, attempts); its id is ``<job>.<sequence>``."""
        return self._name("webhook", delivery_id=delivery_id)


#: The keys of a deployment with the default prefix.
DEFAULT = Keys()
