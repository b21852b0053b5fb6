"""HTTP API of the maintenance models: train (off the event loop) and list versions.

    POST /api/v1/maintenance/train   managers and admins: {"target": "failure"|"anomaly"|"rul", ...}
    GET  /api/v1/maintenance/models/{name}   versions, newest first, with metrics

Training runs in a worker thread, one job at a time (409 while one runs); a model refused
for too little data answers 422 with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from insights.maintenance import training
from insights.maintenance.errors import DataFormatError, InsufficientDataError
from kernel.errors import Conflict, Unprocessable
from kernel.http import Access, Req, Routes

PREFIX = "/api/v1/maintenance"
CMAPSS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "pdm" / "cmapss"
_LOCK = web.AppKey("maintenance_train_lock", asyncio.Lock)

routes = Routes("maintenance", "Predictive-maintenance models: training and versions")


class TrainIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    target: Literal["failure", "anomaly", "rul"]
    assets: Annotated[int, msgspec.Meta(ge=20, le=5000)] = 300
    days: Annotated[int, msgspec.Meta(ge=10, le=730)] = 90
    seed: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    equipment_model: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")] | None
    ) = None
    dataset: Annotated[
        str, msgspec.Meta(pattern=r"^FD00[1-4]$", description="C-MAPSS subset (rul)")
    ] = "FD001"


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


@routes.post(
    f"{PREFIX}/train",
    access=Access.managers(unscoped="trains fleet-wide models; no record is read or written"),
    summary="Train a maintenance model in a worker thread; the new version becomes active",
    description="`failure` and `anomaly` train on simulated fleets (`assets`, `days`, `seed`; "
    "`anomaly` needs `equipment_model`); `rul` on a C-MAPSS subset (`dataset`). One job at "
    "a time: 409 while one runs. Too little data is a 422 `insufficient_data` with the reason.",
    status=201,
    errors=(409,),
)
async def train(req: Req, body: TrainIn) -> ModelOut:
    settings = req.settings
    kwargs: dict[str, Any] = {"state_dir": settings.state_dir, "dsn": settings.dsn}
    job: Callable[[], training.Trained]
    if body.target == "failure":
        job = partial(
            training.train_failure_sim,
            n_assets=body.assets,
            days=body.days,
            seed=body.seed,
            **kwargs,
        )
    elif body.target == "anomaly":
        if body.equipment_model is None:
            raise Unprocessable("equipment_model is required for anomaly", field="equipment_model")
        job = partial(
            training.train_anomaly_sim,
            body.equipment_model,
            n_assets=body.assets,
            days=body.days,
            seed=body.seed,
            **kwargs,
        )
    else:
        path = CMAPSS_DIR / f"train_{body.dataset}.txt"
        job = partial(
            training.train_rul_cmapss,
            path,
            name=f"rul-{body.dataset.lower()}",
            cv_folds=0,
            **kwargs,
        )
    lock = req.app[_LOCK]
    if lock.locked():
        raise Conflict("a training job is running; try again when it is done")
    async with lock:
        try:
            trained = await asyncio.to_thread(job)
        except InsufficientDataError as exc:
            raise Unprocessable(f"refused: {exc}", code="insufficient_data") from exc
        except DataFormatError as exc:
            raise Unprocessable(str(exc)) from exc
    card = trained.card
    return ModelOut(
        card.name, card.kind, card.version, card.created_at, card.metrics, card.data, card.params
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
    app[_LOCK] = asyncio.Lock()
    routes.mount(app)
