"""Every Redis key Moviola uses, in one place.

All keys share the ``moviola:`` prefix so that one Redis can be shared with
other applications and ``SCAN moviola:*`` shows everything of ours.
"""

from __future__ import annotations

from moviola.jobs import Priority

PREFIX = "moviola:"

#: Consumer group of the workers on every queue stream.
GROUP = "workers"

#: Stream of every job's events as they are published (job id, sequence, time, kind), capped at
#: ``FEED_LENGTH`` entries: each gateway tails it with one blocking read for all its watchers.
FEED = f"{PREFIX}feed"
FEED_LENGTH = 20_000
#: A queue entry handed back by a stopping worker stays pending, marked idle this long (11.6 days,
#: longer than any lease): the next free worker takes it before anything that has not started.
HANDED_BACK_IDLE_MS = 10**9

#: Streams that dead jobs go to, with their last error; operators list and requeue them.
DEAD_LETTERS = f"{PREFIX}dead-letters"

#: Sorted set: queued jobs with a start_by time, scored by it; gateways sweep the overdue ones.
DEADLINES = f"{PREFIX}deadlines"


def job(job_id: str) -> str:
    """Hash: the request, its state and counters (sequence, attempts), the queue entry it sits in."""
    return f"{PREFIX}job:{job_id}"


def events(job_id: str) -> str:
    """Stream of a job's events; entry ID ``<sequence>-0``, so that resuming after N is ``XREAD ... N-0``."""
    return f"{PREFIX}events:{job_id}"


def queue(model: str, priority: Priority) -> str:
    """Stream of jobs waiting for a worker of ``model``; one per priority class, read by group ``GROUP``."""
    return f"{PREFIX}queue:{model}:{priority.name.lower()}"


def tenant_jobs(tenant: str) -> str:
    """Sorted set: a tenant's job ids by creation time (ListJobs), trimmed to the retention at each submit."""
    return f"{PREFIX}tenant-jobs:{tenant}"


def idempotency(key: str) -> str:
    """String: the job id first submitted with this idempotency key (expires with the job)."""
    return f"{PREFIX}idempotency:{key}"


def workers(model: str) -> str:
    """Sorted set: worker name scored by its last heartbeat (unix seconds); live ones serve ``model``."""
    return f"{PREFIX}workers:{model}"


def stats(model: str) -> str:
    """Hash: per size class, ``c:<class>`` the moving average of run seconds and ``n:<class>`` the runs seen."""
    return f"{PREFIX}stats:{model}"
