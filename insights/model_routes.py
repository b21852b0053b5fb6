"""HTTP API of the models' life cycle, and the scores of many records at once.

    GET  /api/v1/insights/models                    managers: every recorded model, its
                                                    versions with their cards, open drift
    POST /api/v1/insights/models/{name}/activate    admins: {"version": ...} makes it the
                                                    active one (an older one: rollback) and
                                                    queues the re-scoring of open records
    GET  /api/v1/insights/rescore/{job_id}          managers: that re-scoring job's state
    GET  /api/v1/insights/scores?entity=&ids=       scores, probabilities and model versions
                                                    of up to 200 records the caller may see

Managers read the cards (they already see drift and queue training); activation changes
every score of the tenant, so only admins activate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from insights import jobs as insights_jobs
from insights import lifecycle, record_scores
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes

PREFIX = "/api/v1/insights"
MAX_IDS = 200

routes = Routes(
    "insights-models",
    "The insights models' versions (cards, activation, rollback, drift) and batch scores",
)


class InsightsModelPage(msgspec.Struct, frozen=True):
    items: list[lifecycle.ModelSummary]


@routes.get(
    f"{PREFIX}/models",
    access=Access.managers(unscoped="model cards and drift describe tenant-wide models"),
    summary="Every recorded model with its active version, its versions newest first with "
    "their cards (data window, features, AUC, precision/recall/F1, Brier, ECE, lift) and "
    "its open drift alerts",
)
async def models(req: Req) -> InsightsModelPage:
    async with req.connection(autocommit=True) as conn:
        return InsightsModelPage(await lifecycle.list_models(conn))


class InsightsModelPath(msgspec.Struct, frozen=True):
    name: Annotated[str, msgspec.Meta(max_length=1000)]  # checked in the handler (422)


class InsightsActivateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    version: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=lifecycle.NAME_RE.pattern)
    ]


@routes.post(
    f"{PREFIX}/models/{{name}}/activate",
    access=Access.admin(unscoped="activates a tenant-wide model; answers no record data"),
    summary="Make a recorded version the active one (an older one: a rollback); open "
    "records are re-scored with it by a job",
    errors=(404, 422),
)
async def activate(
    req: Req, path: InsightsModelPath, body: InsightsActivateIn
) -> lifecycle.Activation:
    if not lifecycle.NAME_RE.match(path.name):
        raise Unprocessable(f"model name must match {lifecycle.NAME_RE.pattern}", field="name")
    try:
        async with req.connection() as conn, conn.transaction():
            return await lifecycle.activate(
                conn, path.name, body.version, req.user.user_id, f"{PREFIX}/rescore"
            )
    except lifecycle.UnknownModel as exc:
        raise NotFound(str(exc), field=exc.field) from None


class InsightsRescorePath(msgspec.Struct, frozen=True):
    job_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class InsightsRescoreJob(msgspec.Struct, frozen=True):
    job_id: int
    status: str  # queued, running, done, failed
    entity: str
    error: str | None = None


@routes.get(
    f"{PREFIX}/rescore/{{job_id}}",
    access=Access.managers(unscoped="re-scoring jobs concern tenant-wide models"),
    summary="The state of a re-scoring job queued by an activation",
)
async def rescore_state(req: Req, path: InsightsRescorePath) -> InsightsRescoreJob:
    async with req.connection(autocommit=True) as conn:
        row = await insights_jobs.job_state(conn, path.job_id, insights_jobs.SCORE_TASK)
    if row is None:
        raise NotFound(f"no re-scoring job {path.job_id}", field="job_id")
    args = msgspec.convert(row[2], insights_jobs.ScoreArgs)
    return InsightsRescoreJob(path.job_id, row[0], args.entity, row[1])


# ----------------------------------------------------------------------- batch scores


class InsightsScoresQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    entity: Literal["leads", "opportunities", "accounts"]
    # comma-separated record ids
    ids: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=2**62)]],
        msgspec.Meta(min_length=1, max_length=MAX_IDS),
    ]


class InsightsScoreBrief(msgspec.Struct, frozen=True):
    model_version: str
    score: int  # 0-100 (health: points; the others: probability x 100)
    probability: float | None  # None for the computed account health
    computed_at: datetime


class InsightsRecordScores(msgspec.Struct, frozen=True):
    id: int
    # by model: lead-score; opportunity-win; account-churn and account-health.
    # A model that has not scored the record is absent.
    scores: dict[str, InsightsScoreBrief]


class InsightsScoreBatch(msgspec.Struct, frozen=True):
    entity: str
    items: list[InsightsRecordScores]  # the asked ids the caller may see, in asked order


@routes.get(
    f"{PREFIX}/scores",
    access=Access.read(unscoped="answers only the asked records the caller may see"),
    summary="Scores, probabilities and model versions of up to 200 records of one entity; "
    "records the caller may not see (or that do not exist) are left out",
)
async def scores(req: Req, query: InsightsScoresQuery) -> InsightsScoreBatch:
    ids = list(dict.fromkeys(query.ids))
    async with req.read_connection() as conn:
        rows = await record_scores.visible_scores(conn, req.user, query.entity, ids)
    found = {
        rid: {
            model: InsightsScoreBrief(s.model_version, s.score, s.probability, s.computed_at)
            for model, s in by_model.items()
        }
        for rid, by_model in rows.items()
    }
    return InsightsScoreBatch(
        query.entity, [InsightsRecordScores(i, found[i]) for i in ids if i in found]
    )
