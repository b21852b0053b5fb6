"""Per-entity rules applied on create and update (database side): derived territories,
phone normalisation, lead assignment, opportunity stages and their history."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.assignment import next_assignee, rule_matches
from crm.entities import normalize_phone
from crm.errors import CrmError
from crm.store import AFTER, BEFORE, Row
from kernel.principal import Principal

Conn = AsyncConnection[Any]


async def _one(conn: Conn, query: str, params: Any) -> Row | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    return await cur.fetchone()


async def _phone(conn: Conn, p: Principal, current: Row | None, values: Row) -> None:
    if "phone" in values:
        values["phone_normalized"] = normalize_phone(values["phone"])


async def _account_territory(conn: Conn, values: Row, current: Row | None) -> None:
    """Records hanging off an account live in the account's territory."""
    account_id = values.get("account_id") or (current or {}).get("account_id")
    if account_id is not None and ("account_id" in values or current is None):
        row = await _one(conn, "SELECT territory_id FROM accounts WHERE id = %s", (account_id,))
        if row is not None:
            values["territory_id"] = row["territory_id"]


# --------------------------------------------------------------------------- leads


async def assign_lead(conn: Conn, values: Row) -> None:
    """Evaluate the active assignment rules in priority order; the first that yields an
    assignee sets owner_id (and territory_id when the rule names one)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM lead_assignment_rules WHERE active ORDER BY priority, id FOR UPDATE"
    )
    for rule in await cur.fetchall():
        if not rule_matches(rule, values):
            continue
        territory = (
            rule["set_territory_id"] or values.get("territory_id") or rule["match_territory_id"]
        )
        candidates: list[int] = list(rule["assignee_ids"])
        if candidates:
            await cur.execute("SELECT id FROM users WHERE id = ANY(%s) AND active", (candidates,))
            candidates = [r["id"] for r in await cur.fetchall()]
        elif territory is not None:
            await cur.execute(
                "SELECT id FROM users WHERE territory_id = %s AND active AND role IN ('rep', 'manager')",
                (territory,),
            )
            candidates = [r["id"] for r in await cur.fetchall()]
        chosen = next_assignee(rule["strategy"], candidates, rule["rr_cursor"])
        if chosen is None:
            continue
        await cur.execute(
            "UPDATE lead_assignment_rules SET rr_cursor = %s WHERE id = %s", (chosen, rule["id"])
        )
        values["owner_id"] = chosen
        values["assignment_rule_id"] = rule["id"]
        if values.get("territory_id") is None and territory is not None:
            values["territory_id"] = territory
        return


async def _lead(conn: Conn, p: Principal, current: Row | None, values: Row) -> None:
    await _phone(conn, p, current, values)
    if values.get("status") == "converted" and (
        current is None or current["status"] != "converted"
    ):
        raise CrmError(
            "a lead becomes converted only through POST /api/v1/leads/{id}/convert",
            field="status",
            status=422,
            code="invalid",
        )
    if (
        current is not None
        and current["status"] == "converted"
        and values.get("status", "converted") != "converted"
    ):
        raise CrmError(
            "a converted lead cannot change status", field="status", status=409, code="converted"
        )
    if current is None and "owner_id" not in values:
        await assign_lead(conn, values)


# --------------------------------------------------------------------------- opportunities


async def _stage(conn: Conn, stage_id: int) -> Row:
    row = await _one(conn, "SELECT * FROM pipeline_stages WHERE id = %s", (stage_id,))
    if row is None:
        raise CrmError(
            f"stage_id: stage {stage_id} not found",
            field="stage_id",
            status=422,
            code="unknown_reference",
        )
    return row


async def _opportunity(conn: Conn, p: Principal, current: Row | None, values: Row) -> None:
    await _account_territory(conn, values, current)
    if current is None:
        if "currency" not in values and values.get("account_id") is not None:
            # a deal is in its account's currency unless it names one (the console's form
            # did this already; the API and imports fell back to the tenant's default)
            row = await _one(
                conn, "SELECT currency FROM accounts WHERE id = %s", (values["account_id"],)
            )
            if row is not None and row["currency"] is not None:
                values["currency"] = row["currency"]
        if "pipeline_id" not in values:
            if "stage_id" in values:
                values["pipeline_id"] = (await _stage(conn, values["stage_id"]))["pipeline_id"]
            else:
                row = await _one(
                    conn, "SELECT id FROM pipelines ORDER BY is_default DESC, id LIMIT 1", ()
                )
                if row is None:
                    raise CrmError("no pipeline exists", field="pipeline_id", status=422)
                values["pipeline_id"] = row["id"]
        if "stage_id" not in values:
            row = await _one(
                conn,
                "SELECT id FROM pipeline_stages WHERE pipeline_id = %s ORDER BY position LIMIT 1",
                (values["pipeline_id"],),
            )
            if row is None:
                raise CrmError("the pipeline has no stages", field="pipeline_id", status=422)
            values["stage_id"] = row["id"]
    pipeline_id = values.get("pipeline_id", (current or {}).get("pipeline_id"))
    stage_changed = "stage_id" in values and (
        current is None or values["stage_id"] != current["stage_id"]
    )
    if "pipeline_id" in values and "stage_id" not in values and current is not None:
        raise CrmError(
            "moving to another pipeline needs a stage_id of it", field="stage_id", status=422
        )
    if stage_changed:
        stage = await _stage(conn, values["stage_id"])
        if stage["pipeline_id"] != pipeline_id:
            raise CrmError(
                "stage_id belongs to another pipeline", field="stage_id", status=422, code="invalid"
            )
        if "probability" in values:
            values["probability_is_override"] = True
        else:
            values["probability"] = stage["probability"]
            values["probability_is_override"] = False
        values["status"] = "won" if stage["is_won"] else "lost" if stage["is_lost"] else "open"
        values["closed_at"] = None
        if stage["is_won"] or stage["is_lost"]:
            from datetime import UTC, datetime

            values["closed_at"] = datetime.now(UTC)
    elif "probability" in values:
        values["probability_is_override"] = True


async def _opportunity_after(conn: Conn, p: Principal, old: Row | None, new: Row) -> None:
    if old is None or old["stage_id"] != new["stage_id"]:
        await conn.execute(
            """
            INSERT INTO opportunity_stage_history
                (opportunity_id, from_stage_id, to_stage_id, amount, changed_by)
            VALUES (%s, %s, %s, %s, %s)
            """,
            (
                new["id"],
                old["stage_id"] if old else None,
                new["stage_id"],
                new["amount"],
                p.user_id,
            ),
        )


# --------------------------------------------------------------------------- activities, work orders


async def _activity(conn: Conn, p: Principal, current: Row | None, values: Row) -> None:
    if current is None and values.get("account_id") is None:
        for link, table in (("opportunity_id", "opportunities"), ("work_order_id", "work_orders")):
            if values.get(link) is not None:
                row = await _one(
                    conn, f"SELECT account_id FROM {table} WHERE id = %s", (values[link],)
                )
                if row is not None:
                    values["account_id"] = row["account_id"]
                    break
    if values.get("account_id") is None and current is None:
        for link, table in (("lead_id", "leads"), ("contact_id", "contacts")):
            if values.get(link) is not None:
                row = await _one(
                    conn, f"SELECT territory_id FROM {table} WHERE id = %s", (values[link],)
                )
                if row is not None:
                    values["territory_id"] = row["territory_id"]
                    break
    else:
        await _account_territory(conn, values, current)
    if "status" in values:
        if values["status"] == "done" and (current is None or current["status"] != "done"):
            from datetime import UTC, datetime

            values["completed_at"] = datetime.now(UTC)
        elif values["status"] != "done":
            values["completed_at"] = None


async def _work_order(conn: Conn, p: Principal, current: Row | None, values: Row) -> None:
    await _account_territory(conn, values, current)
    if current is not None and "status" in values and values["status"] != current["status"]:
        row = await _one(
            conn,
            "SELECT 1 AS ok FROM work_order_transitions WHERE from_status = %s AND to_status = %s",
            (current["status"], values["status"]),
        )
        if row is None:
            raise CrmError(
                f"a work order cannot go from {current['status']} to {values['status']}",
                field="status",
                status=409,
                code="invalid_transition",
            )
    if current is None and values.get("status", "new") not in ("new", "assigned", "scheduled"):
        raise CrmError(
            "a work order starts as new, assigned or scheduled", field="status", status=422
        )


def install() -> None:
    BEFORE.update(
        {
            "contacts": _phone,
            "leads": _lead,
            "opportunities": _opportunity,
            "activities": _activity,
            "work_orders": _work_order,
        }
    )
    AFTER["opportunities"] = _opportunity_after
