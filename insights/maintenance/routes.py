"""HTTP API of the maintenance models: train (off the event loop) and list versions.

    POST /api/v1/maintenance/train   managers and admins: {"target": "failure"|"anomaly"|"rul", ...}
    GET  /api/v1/maintenance/train/{job_id}   the training job's state
    GET  /api/v1/maintenance/models/{name}   versions, newest first, with metrics

Training is a job (insights.maintenance.jobs, run by the `jobs` role of `fieldmesh run`), never
work inside an API worker: POST answers 202 with the job, GET .../train/{job_id} its state;
a model refused for too little data fails its job with the reason.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from insights.maintenance.jobs import TRAIN_TASK, TrainIn, model_name
from kernel import jobs
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes

PREFIX = "/api/v1/maintenance"

routes = Routes("maintenance", "Predictive-maintenance models: training and versions")


class ModelOut(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    kind: str
    version: str
    created_at: str
    metrics: dict[str, float]
    data: dict[str, Any]
    params: dict[str, Any]
    active: bool | None = None


class ModelPath(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class ModelPage(msgspec.Struct, frozen=True):
    items: list[ModelOut]


class TrainJob(msgspec.Struct, frozen=True):
    job_id: int
    status: str  # queued, running, done, failed
    model_name: str  # the model the job trains: GET /api/v1/maintenance/models/{model_name}
    error: str | None = None  # why a failed job failed (too little data: `insufficient_data: ...`)
    poll: str = ""


class JobPath(msgspec.Struct, frozen=True):
    job_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


@routes.post(
    f"{PREFIX}/train",
    access=Access.managers(unscoped="trains fleet-wide models; no record is read or written"),
    summary="Queue the training of a maintenance model (the `jobs` role trains it)",
    description="`failure` and `anomaly` train on simulated fleets (`assets`, `days`, `seed`; "
    "`anomaly` needs `equipment_model`); `rul` on a C-MAPSS subset (`dataset`). Answers 202 "
    "with the job; GET it until `done` (the new version is then active) or `failed` (too "
    "little data is `insufficient_data` with the reason).",
    status=202,
)
async def train(req: Req, body: TrainIn) -> TrainJob:
    if body.target == "anomaly" and body.equipment_model is None:
        raise Unprocessable("equipment_model is required for anomaly", field="equipment_model")
    async with req.connection() as conn:
        job_id = await jobs.enqueue(conn, TRAIN_TASK, msgspec.to_builtins(body), max_attempts=1)
    return TrainJob(job_id, "queued", model_name(body), poll=f"{PREFIX}/train/{job_id}")


@routes.get(
    f"{PREFIX}/train/{{job_id}}",
    access=Access.managers(unscoped="training jobs concern fleet-wide models"),
    summary="A training job's state",
)
async def train_state(req: Req, path: JobPath) -> TrainJob:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT status, last_error, args FROM jobs WHERE id = %s AND task = %s",
            (path.job_id, TRAIN_TASK),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no training job {path.job_id}", field="job_id")
    body = msgspec.convert(row[2], TrainIn)
    return TrainJob(
        path.job_id, row[0], model_name(body), row[1], poll=f"{PREFIX}/train/{path.job_id}"
    )


@routes.get(
    f"{PREFIX}/models/{{name}}",
    access=Access.read(unscoped="model cards describe fleet-wide models, no record data"),
    summary="A model's versions, newest first, with their metrics",
)
async def versions(req: Req, path: ModelPath) -> ModelPage:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT name, kind, version, created_at, params, metrics, data, active "
            "FROM maintenance_model WHERE name = %s ORDER BY created_at DESC, version DESC",
            (path.name,),
        )
        rows = await cur.fetchall()
    return ModelPage(
        [
            ModelOut(
                name=r[0],
                kind=r[1],
                version=r[2],
                created_at=r[3].isoformat(),
                metrics=r[5],
                data=r[6],
                params=r[4],
                active=bool(r[7]),
            )
            for r in rows
        ]
    )


def setup(app: web.Application) -> None:
    routes.mount(app)
