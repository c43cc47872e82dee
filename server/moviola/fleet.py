"""What an operator on call looks at: each model's workers and queue, each tenant's limits and use, and
the latest failures. Admin keys only (``PermissionDenied`` for any other), like dead letters and requeue.

    overview = await Fleet(queue, models, keys).overview(caller)

Jobs running and failed are read from each tenant's latest ``SCAN`` jobs (one listing per tenant, the
queue's own index), not from a scan of every job kept: cheap enough to refresh every few seconds, and
where work is (a running job older than a tenant's latest ``SCAN`` is not counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from moviola.auth.caller import ANONYMOUS, Caller
from moviola.auth.keys import AuthFile
from moviola.errors import PermissionDenied
from moviola.jobs import JobRecord, JobState, Priority
from moviola.scheduler.base import GatewayQueue

#: Each tenant's latest jobs read for what runs, waits and failed.
SCAN = 200
#: Failures shown, newest first.
FAILURES = 20


@dataclass(frozen=True)
class ModelLoad:
    model: str
    #: Live workers of the model, by name (the embedded server's in-process ones share its name).
    workers: tuple[str, ...]
    #: Jobs waiting to start, per priority.
    waiting: dict[Priority, int]
    #: Jobs of the model running now.
    running: tuple[str, ...]
    #: What each worker of the model runs now: (worker, job id), as the jobs' STARTED events say.
    busy: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TenantUse:
    #: The tenant as its keys call (name, admin, models, limits).
    tenant: Caller
    queued: int
    running: int


@dataclass(frozen=True)
class Overview:
    models: list[ModelLoad]
    tenants: list[TenantUse]
    #: The latest failed jobs of every tenant, newest first.
    failures: list[JobRecord]


class Fleet:
    def __init__(self, queue: GatewayQueue, models: Iterable[str], keys: AuthFile | None) -> None:
        self._queue = queue
        self._models = tuple(models)
        self._keys = keys

    def _tenants(self) -> tuple[Caller, ...]:
        """The auth file's tenants (as reloaded on SIGHUP); without one, everyone is one tenant."""
        return self._keys.keyring.members if self._keys is not None else (ANONYMOUS,)

    async def overview(self, caller: Caller) -> Overview:
        if not caller.admin:
            raise PermissionDenied("only admin keys may see the fleet")
        tenants = self._tenants()
        latest = {
            t.tenant: await self._queue.list_jobs(t.tenant, after=None, limit=SCAN, state=None)
            for t in tenants
        }
        jobs = [record for records in latest.values() for record in records]
        models = []
        for model in self._models:
            running = [r for r in jobs if r.model == model and r.state is JobState.RUNNING]
            models.append(
                ModelLoad(
                    model,
                    tuple(await self._queue.live_workers(model)),
                    await self._queue.waiting(model),
                    tuple(r.id for r in running),
                    tuple(sorted((r.worker, r.id) for r in running)),
                )
            )
        use = [
            TenantUse(
                t,
                sum(r.state is JobState.QUEUED for r in latest[t.tenant]),
                sum(r.state is JobState.RUNNING for r in latest[t.tenant]),
            )
            for t in tenants
        ]
        failed = sorted(
            (r for r in jobs if r.state is JobState.FAILED), key=lambda r: r.finished_at or 0, reverse=True
        )
        return Overview(models, use, failed[:FAILURES])
