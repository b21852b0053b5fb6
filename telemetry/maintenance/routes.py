"""HTTP API of the maintenance models: train (off the event loop) and list versions.

    POST /api/v1/maintenance/train   admin: {"target": "failure"|"anomaly"|"rul", ...}
    GET  /api/v1/maintenance/models/{name}   versions, newest first, with metrics

Training runs in a worker thread, one job at a time (409 while one runs); a model refused
for too little data answers 422 with the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from identity.auth import current_user
from kernel.errors import ApiError, Conflict, Unprocessable
from telemetry.maintenance import training
from telemetry.maintenance.errors import DataFormatError, InsufficientDataError
from telemetry.maintenance.rul import ModelCard

PREFIX = "/api/v1/maintenance"
CMAPSS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "pdm" / "cmapss"
_LOCK = web.AppKey("maintenance_train_lock", asyncio.Lock)
_DATASET_RE = re.compile(r"^FD00[1-4]$")


def _card_json(card: ModelCard, active: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": card.name,
        "kind": card.kind,
        "version": card.version,
        "created_at": card.created_at,
        "metrics": card.metrics,
        "data": card.data,
        "params": card.params,
    }
    if active is not None:
        out["active"] = active
    return out


def _int(body: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = body.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise Unprocessable(f"{key} must be an integer in [{lo}, {hi}]", field=key)
    return v


async def train(request: web.Request) -> web.Response:
    (await current_user(request)).require_admin()
    try:
        body = json.loads(await request.read())
    except json.JSONDecodeError as exc:
        raise ApiError(f"request body is not valid JSON: {exc.msg}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise Unprocessable("body must be an object", field="$")
    from kernel.web import SETTINGS

    settings = request.app[SETTINGS]
    target = body.get("target")
    assets = _int(body, "assets", 300, 20, 5000)
    days = _int(body, "days", 90, 10, 730)
    seed = _int(body, "seed", 0, 0, 2**31 - 1)
    kwargs: dict[str, Any] = {"state_dir": settings.state_dir, "dsn": settings.dsn}
    if target == "failure":
        job: Callable[[], training.Trained] = partial(
            training.train_failure_sim, n_assets=assets, days=days, seed=seed, **kwargs
        )
    elif target == "anomaly":
        model = body.get("equipment_model")
        if not isinstance(model, str):
            raise Unprocessable("equipment_model is required for anomaly", field="equipment_model")
        job = partial(
            training.train_anomaly_sim, model, n_assets=assets, days=days, seed=seed, **kwargs
        )
    elif target == "rul":
        dataset = body.get("dataset", "FD001")
        if not isinstance(dataset, str) or not _DATASET_RE.match(dataset):
            raise Unprocessable("dataset must be one of FD001..FD004", field="dataset")
        path = CMAPSS_DIR / f"train_{dataset}.txt"
        job = partial(
            training.train_rul_cmapss, path, name=f"rul-{dataset.lower()}", cv_folds=0, **kwargs
        )
    else:
        raise Unprocessable("target must be failure, anomaly or rul", field="target")
    lock = request.app[_LOCK]
    if lock.locked():
        raise Conflict("a training job is running; try again when it is done")
    async with lock:
        try:
            trained = await asyncio.to_thread(job)
        except InsufficientDataError as exc:
            raise Unprocessable(f"refused: {exc}", code="insufficient_data") from exc
        except DataFormatError as exc:
            raise Unprocessable(str(exc)) from exc
    return web.json_response(_card_json(trained.card), status=201)


async def versions(request: web.Request) -> web.Response:
    await current_user(request)
    from kernel.web import DB_POOL

    name = request.match_info["name"]
    async with request.app[DB_POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT name, kind, version, created_at, params, metrics, data, active "
            "FROM maintenance_model WHERE name = %s ORDER BY created_at DESC, version DESC",
            (name,),
        )
        rows = await cur.fetchall()
    items = [
        _card_json(
            ModelCard(
                name=r[0],
                kind=r[1],
                version=r[2],
                created_at=r[3].isoformat(),
                params=r[4],
                metrics=r[5],
                data=r[6],
            ),
            active=bool(r[7]),
        )
        for r in rows
    ]
    return web.json_response({"items": items})


def setup(app: web.Application) -> None:
    app[_LOCK] = asyncio.Lock()
    app.router.add_post(f"{PREFIX}/train", train)
    app.router.add_get(f"{PREFIX}/models/{{name}}", versions)
