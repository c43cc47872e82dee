"""The operator's routes, admin keys only (403 for any other key), like their gRPC twins:

GET  /v1/admin/fleet                               each model's workers and queue, each tenant's limits
                                                   and use, the latest failures (``fleet.Fleet``)
GET  /v1/admin/dead_letters                        ListDeadLetters
POST /v1/admin/dead_letters/{video_id}/requeue     RequeueJob: the request again, as a new video

Each translates to one call of the job service or the fleet and back.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from moviola.auth import caller as callers
from moviola.errors import Unavailable
from moviola.fleet import Fleet, ModelLoad, TenantUse
from moviola.jobs import JobRecord, Priority
from moviola.rest import openapi, schemas, videos
from moviola.scheduler.base import DeadLetter
from moviola.service import JobService


def _model(load: ModelLoad) -> dict[str, Any]:
    return {
        "model": load.model,
        "workers": list(load.workers),
        "queued": {p.name.lower(): load.waiting.get(p, 0) for p in Priority},
        "running": list(load.running),
        "busy": [{"worker": worker, "video_id": job} for worker, job in load.busy],
    }


def _tenant(use: TenantUse) -> dict[str, Any]:
    tenant, limits = use.tenant, use.tenant.limits
    return {
        "tenant": tenant.tenant,
        "admin": tenant.admin,
        "models": None if tenant.models is None else sorted(tenant.models),
        "limits": {
            "in_flight": limits.in_flight,
            "rate": limits.rate,
            "burst": limits.bucket,
            "weight": limits.weight,
        },
        "queued": use.queued,
        "running": use.running,
    }


def _failure(record: JobRecord) -> dict[str, Any]:
    failure = record.failure
    return {
        "video_id": record.id,
        "tenant": record.request.tenant,
        "model": record.model,
        "code": failure.code.value if failure else "",
        "message": failure.message if failure else "",
        "failed_at": int(record.finished_at or 0),
    }


def _letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "video_id": letter.job_id,
        "model": letter.model,
        "error": letter.error,
        "attempts": letter.attempts,
        "failed_at": int(letter.time),
    }


class AdminRoutes:
    def __init__(self, service: JobService, fleet: Fleet | None) -> None:
        self.service, self.fleet = service, fleet

    async def overview(self) -> dict[str, Any]:
        if self.fleet is None:  # an app built for its OpenAPI document alone (scripts/openapi.py)
            raise Unavailable("this server has no fleet to show")
        seen = await self.fleet.overview(callers.current())
        return {
            "object": "fleet",
            "models": [_model(m) for m in seen.models],
            "tenants": [_tenant(t) for t in seen.tenants],
            "failures": [_failure(r) for r in seen.failures],
        }

    async def dead_letters(self) -> dict[str, Any]:
        letters = await self.service.dead_letters(callers.current())
        return {"object": "list", "data": [_letter(d) for d in letters]}

    async def requeue(self, video_id: str) -> dict[str, Any]:
        job = await self.service.requeue(video_id, callers.current())
        return videos.video(job.record, job.links)


_INT, _STR = {"type": "integer"}, {"type": "string"}
_NAMES = {"type": "array", "items": _STR}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


FLEET = _object(
    ["object", "models", "tenants", "failures"],
    object={"const": "fleet"},
    models={
        "type": "array",
        "items": _object(
            ["model", "workers", "queued", "running", "busy"],
            model=_STR,
            workers=_NAMES | {"description": "Live workers, by name."},
            queued=_object(["interactive", "batch"], interactive=_INT, batch=_INT),
            running=_NAMES | {"description": "Videos running now (among each tenant's latest 200)."},
            busy={
                "type": "array",
                "description": "What each worker runs now: its name and the video.",
                "items": _object(["worker", "video_id"], worker=_STR, video_id=_STR),
            },
        ),
    },
    tenants={
        "type": "array",
        "items": _object(
            ["tenant", "admin", "limits", "queued", "running"],
            tenant=_STR,
            admin={"type": "boolean"},
            models={"type": ["array", "null"], "items": _STR, "description": "Models it may use; null: all."},
            limits=_object(
                ["in_flight", "rate", "burst", "weight"],
                in_flight=_INT | {"description": "0: no limit."},
                rate={"type": "number", "description": "Submits per second; 0: no limit."},
                burst=_INT,
                weight={"type": "number"},
            ),
            queued=_INT,
            running=_INT,
        ),
    },
    failures={
        "type": "array",
        "items": _object(
            ["video_id", "tenant", "model", "code", "message", "failed_at"],
            video_id=_STR,
            tenant=_STR,
            model=_STR,
            code=_STR,
            message=_STR,
            failed_at=_INT,
        ),
    },
)
LETTERS = schemas.list_of(
    _object(
        ["video_id", "model", "error", "attempts", "failed_at"],
        video_id=_STR,
        model=_STR,
        error=_STR,
        attempts=_INT,
        failed_at=_INT,
    )
)


def add_routes(app: FastAPI, service: JobService, fleet: Fleet | None) -> None:
    routes = AdminRoutes(service, fleet)
    for path, method, endpoint, ok, statuses in (
        ("/v1/admin/fleet", "GET", routes.overview, openapi.json_ok(FLEET), (403,)),
        ("/v1/admin/dead_letters", "GET", routes.dead_letters, openapi.json_ok(LETTERS), (403,)),
        (
            "/v1/admin/dead_letters/{video_id}/requeue",
            "POST",
            routes.requeue,
            openapi.json_ok(openapi.VIDEO, "The new video"),
            (403, 404),
        ),
    ):
        app.add_api_route(path, endpoint, methods=[method], **openapi.declare(ok, {}, statuses))
