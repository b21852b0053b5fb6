"""Training maintenance models as jobs (kernel.jobs): the `jobs` role trains, API workers
only queue (insights.maintenance.routes).

A job trains once (`max_attempts=1`: a refusal for too little data is an answer, not a
fault to retry); its failure reason is the job's `last_error`, shown by the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from insights.maintenance import training
from insights.maintenance.errors import InsufficientDataError
from kernel.jobs import JobContext, Registry, Task

TRAIN_TASK = "insights.maintenance.train"
CMAPSS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "pdm" / "cmapss"


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


def model_name(body: TrainIn) -> str:
    """The name the trained model is recorded under."""
    if body.target == "failure":
        return "failure-7d"
    if body.target == "anomaly":
        return f"anomaly-{body.equipment_model}"
    return f"rul-{body.dataset.lower()}"


async def train(ctx: JobContext, args: dict[str, Any]) -> None:
    body = msgspec.convert(args, TrainIn)
    if ctx.settings is None:
        raise RuntimeError("training needs the deployment's settings (its state directory)")
    kwargs: dict[str, Any] = {"state_dir": ctx.settings.state_dir, "dsn": ctx.dsn}
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
        assert body.equipment_model is not None  # the API refuses anomaly without it
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
        job = partial(training.train_rul_cmapss, path, name=model_name(body), cv_folds=0, **kwargs)
    try:
        await asyncio.to_thread(job)  # CPU-bound: off the worker's event loop
    except InsufficientDataError as exc:
        raise RuntimeError(f"insufficient_data: {exc}") from exc


def register(registry: Registry) -> None:
    # One training at a time per worker: it is CPU-bound, and a manager may queue any
    # number of them; the worker's other slots stay free for everyone else's jobs.
    registry.add(Task(TRAIN_TASK, train, timeout_s=3600.0, concurrency=1))
