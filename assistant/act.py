"""Acting on an understood command, through the CRM store and its access clause.

Reads run at once: a search (the store's list with `q`, so the caller sees only what the
API would show them), pipeline figures (open opportunities and open work orders in the
caller's scope), the rep's next stop (the current stop of their planned day, as the phone shows it; else
their next scheduled work order). Writes are never
run without a confirmation: the answer says what would be done and asks for it; the
client sends the same text again with `confirm: true` to carry it out (stateless, so any
chat or voice platform can drive it). Confirmed writes are carried out by assistant.writes
through the CRM store as the caller, audited, and undoable where the CRM allows it (check-in, visit close with dictated
notes, alert acknowledgement included).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from assistant import stops, writes
from assistant.understand import Understanding
from crm.entities import ENTITIES, OPPORTUNITIES, WORK_ORDERS
from crm.filters import parse_sort
from crm.store import list_records, scope
from kernel.errors import ApiError
from kernel.principal import Principal

Conn = AsyncConnection[Any]

TABLE = {
    "account": "accounts",
    "contact": "contacts",
    "lead": "leads",
    "opportunity": "opportunities",
    "work_order": "work_orders",
    "activity": "activities",
}
WRITES = {
    "create_record": "create the {entity} {name}",
    "update_record": "set {field} of {entity} {name} to {value}",
    "log_activity": "log a {activity_type} with {name}",
    "schedule_meeting": "put a meeting with {name} on {date} {time}",
    "create_work_order": "open a work order for {name}",
    "set_reminder": "remind you on {date} {time}",
    "check_in": "check you in at the current stop",
    "complete_visit": "close the current visit",
    "acknowledge_alert": "acknowledge the alert {device}",
}
SCREEN_LINK = "/console/#/{screen}"
# the console's hash route of each screen of the schema (settings: the signed-in user's page)
CONSOLE_SCREEN = {"work_orders": "workorders", "settings": "users"}


@dataclass
class Answer:
    text: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    needs_confirmation: bool = False


def _fmt(template: str, slots: dict[str, Any]) -> str:
    class Missing(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return ""

    return " ".join(template.format_map(Missing(slots)).split())


async def act(
    conn: Conn,
    principal: Principal,
    u: Understanding,
    now: dt.datetime,
    confirm: bool = False,
    *,
    text: str = "",
    channel: str = "text",
) -> Answer:
    """What the assistant answers and does for `u`, as `principal`; a write only on `confirm`."""
    s = u.slots
    if u.intent == "out_of_scope":
        return Answer(
            "Sorry, I can't do that. I can search records, report figures, open screens, log activities, schedule meetings, create work orders and set reminders."
        )
    if u.intent == "navigate":
        screen = s.get("screen")
        if not screen:
            return Answer("Which screen? For example: map, alerts, work orders, pipeline.")
        return Answer(
            f"Opening {screen.replace('_', ' ')}.",
            [
                {
                    "type": "navigate",
                    "screen": screen,
                    "href": SCREEN_LINK.format(screen=CONSOLE_SCREEN.get(screen, screen)),
                }
            ],
            [SCREEN_LINK.format(screen=CONSOLE_SCREEN.get(screen, screen))],
        )
    if u.intent == "search_records":
        return await _search(conn, principal, s)
    if u.intent == "report_query":
        return await _report(conn, principal, s)
    if u.intent == "next_stop":
        return await _next_stop(conn, principal, now)
    template = WRITES.get(u.intent)
    if template is None:  # pragma: no cover - every intent is listed above
        return Answer("Sorry, I can't do that yet.")
    if confirm:
        return await _write(conn, principal, u, now, text, channel)
    if u.intent in ("check_in", "complete_visit"):
        question = await _visit_question(conn, principal, u.intent, now, str(s.get("notes") or ""))
    else:
        question = _fmt(template, s)
    return Answer(
        f"I will {question}. Shall I go ahead?",
        [{"type": u.intent, "slots": s, "status": "awaiting_confirmation"}],
        needs_confirmation=True,
    )


async def _write(
    conn: Conn, principal: Principal, u: Understanding, now: dt.datetime, text: str, channel: str
) -> Answer:
    """A confirmed write, through the CRM store as the caller (its role and territory checks
    apply), audited in assistant_actions with what undoes it."""
    try:
        async with conn.transaction():  # a refusal leaves nothing half done
            done = await writes.carry_out(conn, principal, u, now)
    except writes.Ambiguous as amb:
        options = [
            {"entity": t, "id": r["id"], "label": writes.label(t, r)} for t, r in amb.options[:5]
        ]
        names = [o["label"] for o in options]
        which = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        return Answer(
            f"Which {amb.name}: {which}? Say it again with the full name.",
            [{"type": "disambiguate", "name": amb.name, "options": options}],
            [f"/api/v1/{o['entity']}/{o['id']}" for o in options],
        )
    except writes.NotFound as nf:
        return Answer(
            f"I found no record named '{nf}' that you can see; nothing was changed.",
            [{"type": u.intent, "status": "not_found", "name": str(nf)}],
        )
    except ApiError as exc:
        done = writes.Done(f"I could not do that: {exc}", "refused")
    action_id = await writes.record(conn, principal, channel, text, u, done)
    action: dict[str, Any] = {"type": u.intent, "status": done.status, "action_id": action_id}
    links: list[str] = []
    if done.entity and done.record_id is not None:
        action.update(entity=done.entity, id=done.record_id, undoable=done.undo is not None)
        links.append(f"/api/v1/{done.entity}/{done.record_id}")
    return Answer(done.text, [action], links)


async def _search(conn: Conn, principal: Principal, s: dict[str, Any]) -> Answer:
    table = TABLE.get(s.get("entity", ""), "accounts")
    entity = ENTITIES[table]
    q = s.get("name") or s.get("city") or s.get("territory")
    if q and not entity.search:
        q = None
    page = await list_records(
        conn, entity, principal, sort=parse_sort(entity, None), limit=10, q=q, with_total=True
    )
    label = entity.name.replace("_", " ")
    title = next((f for f in ("name", "title", "subject") if entity.field(f)), "id")
    names = [str(r.get(title) or r["id"]) for r in page.items]
    links = [f"/api/v1/{entity.name}/{r['id']}" for r in page.items]
    where = f" matching '{q}'" if q else ""
    if not page.items:
        return Answer(
            f"I found no {label}{where}.", [{"type": "search", "entity": table, "q": q, "total": 0}]
        )
    more = (
        f" (showing {len(names)} of {page.total})" if page.total and page.total > len(names) else ""
    )
    return Answer(
        f"I found {page.total} {label}{where}{more}: {', '.join(names)}.",
        [{"type": "search", "entity": table, "q": q, "total": page.total}],
        links,
    )


def _money(v: Any) -> str:
    x = float(v or 0)
    return f"{x:,.0f}"


async def _report(conn: Conn, principal: Principal, s: dict[str, Any]) -> Answer:
    metric = s.get("metric")
    cur = conn.cursor(row_factory=dict_row)
    if metric == "pipeline_value":
        acc, acc_p = scope(OPPORTUNITIES, principal, "o")
        await cur.execute(
            sql.SQL(
                "SELECT count(*) AS n, coalesce(sum(o.amount), 0) AS total FROM opportunities o WHERE o.status = 'open' AND {}"
            ).format(acc),
            acc_p,
        )
        row = await cur.fetchone()
        assert row is not None
        value: Any = row["total"] if isinstance(row["total"], Decimal | int | float) else 0
        return Answer(
            f"The open pipeline you can see is {_money(value)} over {row['n']} opportunities.",
            [{"type": "report", "metric": metric, "value": float(value), "count": int(row["n"])}],
            [SCREEN_LINK.format(screen="pipeline")],
        )
    if metric == "open_work_orders":
        acc, acc_p = scope(WORK_ORDERS, principal, "w")
        await cur.execute(
            sql.SQL(
                "SELECT count(*) AS n FROM work_orders w WHERE w.status NOT IN ('done', 'cancelled') AND {}"
            ).format(acc),
            acc_p,
        )
        row = await cur.fetchone()
        assert row is not None
        return Answer(
            f"There are {row['n']} open work orders you can see.",
            [{"type": "report", "metric": metric, "value": int(row["n"])}],
            [SCREEN_LINK.format(screen="work_orders")],
        )
    what = (metric or "that figure").replace("_", " ")
    return Answer(
        f"I can't report {what} yet; I can tell you the pipeline value and the open work orders."
    )


async def _visit_question(
    conn: Conn, principal: Principal, intent: str, now: dt.datetime, notes: str
) -> str:
    """What a check-in or a visit close will do, naming the stop of the planned day and the
    dictated notes (a driver hears which stop before saying yes)."""
    planned = await stops.planned_stop(conn, principal, now.date())
    where = "the current stop"
    if planned is not None:
        wo = planned.extra.get("work_order")
        where = planned.extra["account"]["name"] + (f" ({wo['title']})" if wo else "")
    if intent == "check_in":
        return f"check you in at {where}"
    return f"close the visit at {where}" + (
        f" and note \u201c{notes.strip()}\u201d" if notes.strip() else ""
    )


async def _next_stop(conn: Conn, principal: Principal, now: dt.datetime) -> Answer:
    """The current stop of the caller's planned day (as the phone shows it), else their next
    scheduled work order today or later, with its account."""
    planned = await stops.planned_stop(conn, principal, now.date())
    if planned is not None:
        account = planned.extra["account"]
        wo = planned.extra.get("work_order")
        when = f" at {planned.eta.astimezone(now.tzinfo):%H:%M}" if planned.eta else ""
        return Answer(
            f"Your next stop is {account['name']}{when}: "
            f"{wo['title'] if wo else 'periodic visit'}.",
            [
                {
                    "type": "next_stop",
                    "work_order_id": planned.work_order_id,
                    "account_id": planned.account_id,
                    "stop": planned.key,
                }
            ],
            [f"/api/v1/work_orders/{wo['id']}" if wo else f"/api/v1/accounts/{account['id']}"],
        )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT w.id, w.title, w.scheduled_start, a.id AS account_id, a.name AS account
        FROM work_orders w LEFT JOIN accounts a ON a.id = w.account_id
        WHERE w.assignee_id = %s AND w.status NOT IN ('done', 'cancelled')
          AND w.scheduled_start IS NOT NULL AND w.scheduled_start >= %s
        ORDER BY w.scheduled_start LIMIT 1
        """,
        (principal.user_id, now.replace(hour=0, minute=0, second=0, microsecond=0)),
    )
    row = await cur.fetchone()
    if row is None:
        return Answer(
            "You have no further stops scheduled.", [{"type": "next_stop", "work_order_id": None}]
        )
    at = row["scheduled_start"]
    when = at.strftime("%H:%M") if isinstance(at, dt.datetime) else str(at)
    return Answer(
        f"Your next stop is {row['account'] or 'work order ' + str(row['id'])} at {when}: {row['title']}.",
        [{"type": "next_stop", "work_order_id": row["id"], "account_id": row["account_id"]}],
        [f"/api/v1/work_orders/{row['id']}"],
    )


async def visible_names(conn: Conn, principal: Principal, limit: int = 400) -> list[str]:
    """Names of the accounts, contacts and leads `principal` may see (recent first), for the
    speech recogniser's vocabulary: it never learns a name the caller could not look up."""
    names: list[str] = []
    cur = conn.cursor()
    for table, expr in (
        ("accounts", "t.name"),
        ("contacts", "concat_ws(' ', t.first_name, t.last_name)"),
        ("leads", "concat_ws(' ', t.first_name, t.last_name)"),
    ):
        where, params = scope(ENTITIES[table], principal)
        query = sql.SQL(
            "SELECT {expr} FROM {table} t WHERE {where} ORDER BY t.updated_at DESC LIMIT %s"
        ).format(expr=sql.SQL(expr), table=sql.Identifier(table), where=where)
        await cur.execute(query, [*params, limit])
        names.extend(str(r[0]) for r in await cur.fetchall() if r[0])
    return names
