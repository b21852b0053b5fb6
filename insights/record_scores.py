"""The stored scores of many CRM records at once, under the caller's access: one query for
the batch scores endpoint (insights.model_routes) and for the score columns of the list
exports (crm.list_export's computed columns), so a list, its export and the API agree.

Each column is the value the console's list shows: the lead score (0-100), the win and
churn probabilities in whole percent, the computed account health (0-100; its manual
override is the account's `health_score` field, a column of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from crm import list_export
from crm import store as crm_store
from crm.entities import ENTITIES
from insights import live
from kernel.principal import Principal

# the models that score each entity's records
SCORED_MODELS = {
    "leads": (live.LEAD_MODEL,),
    "opportunities": (live.WIN_MODEL,),
    "accounts": (live.CHURN_MODEL, live.HEALTH_MODEL),
}

# (entity, column name in `columns=`, heading as the list shows it, model, as percent)
_COLUMNS = (
    ("leads", "score", "Score", live.LEAD_MODEL, False),
    ("opportunities", "win_pct", "Win %", live.WIN_MODEL, True),
    ("accounts", "churn_risk", "Churn risk", live.CHURN_MODEL, True),
    ("accounts", "health", "Health", live.HEALTH_MODEL, False),
)


@dataclass(frozen=True, slots=True)
class StoredScore:
    model_version: str
    score: int  # 0-100
    probability: float | None  # None for the computed account health
    computed_at: datetime


async def visible_scores(
    conn: AsyncConnection[Any],
    principal: Principal,
    entity: str,
    ids: list[int],
    models: tuple[str, ...] | None = None,
) -> dict[int, dict[str, StoredScore]]:
    """The records of `ids` the principal may see (the others are absent), each with its
    stored scores by model (empty: no model scored it)."""
    ent = ENTITIES[entity]
    acc, acc_params = crm_store.scope(ent, principal, "t")
    stmt = sql.SQL(
        """
        SELECT t.id, sc.model, sc.model_version, sc.score, sc.probability, sc.computed_at
        FROM {table} t
        LEFT JOIN insights_score sc ON sc.entity = %s AND sc.record_id = t.id
             AND sc.model = ANY(%s)
        WHERE t.id = ANY(%s) AND {acc}
        """
    ).format(table=sql.Identifier(ent.table), acc=acc)
    cur = await conn.execute(
        stmt, [entity, list(models or SCORED_MODELS[entity]), ids, *acc_params]
    )
    found: dict[int, dict[str, StoredScore]] = {}
    for rid, model, version, score, prob, at in await cur.fetchall():
        got = found.setdefault(int(rid), {})
        if model is not None:
            got[str(model)] = StoredScore(
                str(version), int(score), None if prob is None else float(prob), at
            )
    return found


def _column_values(entity: str, model: str, percent: bool) -> list_export.Values:
    async def values(
        conn: AsyncConnection[Any], principal: Principal, ids: list[int]
    ) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for rid, by_model in (await visible_scores(conn, principal, entity, ids, (model,))).items():
            s = by_model.get(model)
            if s is None:
                continue
            # whole percent, half away from zero as the list's Math.round (never negative)
            out[rid] = (
                int(s.probability * 100 + 0.5) if percent and s.probability is not None else s.score
            )
        return out

    return values


def add_export_columns() -> None:
    """Give the leads, opportunities and accounts list exports the lists' score columns."""
    for entity, name, heading, model, percent in _COLUMNS:
        list_export.add_computed(
            entity, list_export.Computed(name, heading, _column_values(entity, model, percent))
        )
