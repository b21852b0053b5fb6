"""Confirmed writes, carried out through the CRM store as the caller, audited, and undoable.

Every write goes through `crm.store` (create_record, update_record, delete_record) with the
caller's principal, so its role, territory and visibility checks apply exactly as on the
API: the assistant can never do what the user could not. A name in the command is resolved
against the records the caller may see (the store's ranked, typo-tolerant search); several
close candidates are answered with a question naming them rather than a guess. Each
confirmed write is written to `assistant_actions` (who, when, typed or spoken, the text, the
intent and slots, done or refused and why, the record) with what undoes it: deleting what
was created, or putting back the old value of what was changed (again through the store,
so undo too is only what the user may do).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from assistant import stops
from assistant.understand import Understanding
from crm.entities import ENTITIES, Entity
from crm.filters import parse_sort
from crm.store import create_record, delete_record, get_record, list_records, update_record
from kernel.errors import ApiError
from kernel.principal import Principal
from telemetry.access import device_clause

Conn = AsyncConnection[Any]
Row = dict[str, Any]

TABLE = {
    "account": "accounts",
    "contact": "contacts",
    "lead": "leads",
    "opportunity": "opportunities",
    "work_order": "work_orders",
}
PEOPLE = ("contacts", "leads")


@dataclass
class Done:
    text: str
    status: str  # done | refused | not_supported | ask
    entity: str | None = None
    record_id: int | None = None
    undo: dict[str, Any] | None = None
    options: list[dict[str, Any]] = field(default_factory=list)


def label(table: str, row: Row) -> str:
    if table in PEOPLE:
        person = " ".join(str(row.get(k) or "") for k in ("first_name", "last_name")).strip()
        company = row.get("company_name") or row.get("company")
        return f"{person} at {company}" if company else person
    return str(row.get("name") or row.get("title") or row.get("subject") or row["id"])


class Ambiguous(Exception):
    def __init__(self, name: str, options: list[tuple[str, Row]]) -> None:
        super().__init__(name)
        self.name = name
        self.options = options


class NotFound(Exception):
    pass


def _closeness(name: str, table: str, row: Row) -> float:
    """How well `name` names `row` (0-1): the best of its whole label and the person alone."""
    want = " ".join(name.casefold().split())
    full = label(table, row).casefold()
    return max(SequenceMatcher(None, want, c).ratio() for c in (full, full.split(" at ")[0]))


async def resolve(
    conn: Conn, principal: Principal, tables: tuple[str, ...], name: str
) -> tuple[str, Row]:
    """The one record named `name` among `tables` that the caller may see (the store's search
    with the caller's access; the whole name first, then its last and first words)."""
    words = name.split()
    found: dict[tuple[str, int], tuple[str, Row]] = {}
    for q in dict.fromkeys([name, words[-1], words[0]] if words else [name]):
        for table in tables:
            entity = ENTITIES[table]
            page = await list_records(
                conn, entity, principal, sort=parse_sort(entity, None), limit=10, q=q
            )
            for r in page.items:
                found[(table, int(r["id"]))] = (table, r)
        if found:
            break
    ranked = sorted(found.values(), key=lambda tr: -_closeness(name, *tr))
    close = [tr for tr in ranked if _closeness(name, *tr) >= 0.75]
    if not close:
        raise NotFound(name)
    best = _closeness(name, *close[0])
    tied = [tr for tr in close if best - _closeness(name, *tr) < 0.02]
    if len(tied) == 1:
        return tied[0]
    raise Ambiguous(name, tied)


def _when(slots: dict[str, Any], now: dt.datetime, default_time: str) -> dt.datetime:
    day = dt.date.fromisoformat(str(slots["date"]))
    hh, mm = str(slots.get("time") or default_time).split(":")
    return dt.datetime(day.year, day.month, day.day, int(hh), int(mm), tzinfo=now.tzinfo)


def _split(name: str) -> Row:
    parts = name.split()
    if len(parts) == 1:
        return {"last_name": parts[0]}
    return {"first_name": " ".join(parts[:-1]), "last_name": parts[-1]}


def _links(table: str, row: Row) -> Row:
    key = {"accounts": "account_id", "contacts": "contact_id", "leads": "lead_id"}.get(table)
    out: Row = {key: row["id"]} if key else {}
    if table == "contacts" and row.get("account_id"):
        out["account_id"] = row["account_id"]
    return out


async def carry_out(conn: Conn, principal: Principal, u: Understanding, now: dt.datetime) -> Done:
    """Carry out the write `u` asks for, as `principal`; raise ApiError when the store refuses."""
    s = u.slots
    name = str(s.get("name") or "").strip()
    if u.intent == "create_record":
        table = TABLE.get(str(s.get("entity")), "")
        values: Row
        if table == "accounts":
            values = {"name": name}
        elif table in PEOPLE:
            values = _split(name)
            company = s.get("company")
            if company:
                values["company_name" if table == "contacts" else "company"] = str(company)
            for k in ("email", "phone"):
                if s.get(k):
                    values[k] = str(s[k])
        elif table == "opportunities":
            _, account = await resolve(
                conn, principal, ("accounts",), str(s.get("company") or name)
            )
            values = {"name": f"{account['name']} opportunity", "account_id": account["id"]}
            if s.get("amount") is not None:
                values["amount"] = str(s["amount"])
        else:
            return Done(
                "I can create accounts, contacts, leads and opportunities.", "not_supported"
            )
        row = await create_record(conn, ENTITIES[table], principal, values)
        what = ENTITIES[table].singular.replace("_", " ")
        return Done(
            f"Created the {what} {label(table, row)}.",
            "done",
            table,
            int(row["id"]),
            {"op": "delete", "entity": table, "id": int(row["id"])},
        )
    if u.intent == "create_work_order":
        _, account = await resolve(conn, principal, ("accounts",), name)
        values = {
            "account_id": account["id"],
            "title": str(s.get("description") or f"Service request for {account['name']}")[:300],
            "source": "assistant",
        }
        if s.get("priority"):
            values["priority"] = str(s["priority"])
        row = await create_record(conn, ENTITIES["work_orders"], principal, values)
        return Done(
            f"Opened work order {row['id']} for {account['name']}: {row['title']}.",
            "done",
            "work_orders",
            int(row["id"]),
            {"op": "delete", "entity": "work_orders", "id": int(row["id"])},
        )
    if u.intent in ("log_activity", "schedule_meeting", "set_reminder"):
        values = {"source": "assistant", "tz": str(now.tzinfo or "UTC")}
        target = ""
        if name:
            table, rec = await resolve(conn, principal, ("contacts", "accounts", "leads"), name)
            values.update(_links(table, rec))
            target = label(table, rec)
        notes = str(s.get("notes") or "").strip()
        if u.intent == "log_activity":
            kind = str(s.get("activity_type") or "note")
            values.update(type=kind, status="open" if kind == "task" else "done")
            values["subject"] = (notes or f"{kind.title()} with {target or 'no one named'}")[:500]
            if notes:
                values["body"] = notes
            said = f"Logged the {kind}" + (f" with {target}" if target else "")
        elif u.intent == "schedule_meeting":
            start = _when(s, now, "09:00")
            minutes = int(s.get("duration_min") or 30)
            values.update(
                type="meeting",
                status="open",
                subject=f"Meeting with {target}"[:500],
                start_at=start.isoformat(),
                end_at=(start + dt.timedelta(minutes=minutes)).isoformat(),
            )
            said = f"Put a {minutes}-minute meeting with {target} in the calendar on {start:%a %d %b at %H:%M}"
        else:
            due = _when(s, now, "09:00")
            values.update(
                type="task",
                status="open",
                subject=(notes or "Reminder")[:500],
                due_at=due.isoformat(),
            )
            said = f"I will remind you on {due:%a %d %b at %H:%M}: {notes or 'reminder'}"
        row = await create_record(conn, ENTITIES["activities"], principal, values)
        return Done(
            said + ".",
            "done",
            "activities",
            int(row["id"]),
            {"op": "delete", "entity": "activities", "id": int(row["id"])},
        )
    if u.intent == "update_record":
        return await _update(conn, principal, s, name)
    if u.intent in ("check_in", "complete_visit"):
        return await _visit(conn, principal, u.intent, str(s.get("notes") or "").strip(), now)
    if u.intent == "acknowledge_alert":
        return await _acknowledge(conn, principal, str(s.get("device") or ""))
    return Done(
        "I understood, but I can't carry that out from here yet; please use the app.",
        "not_supported",
    )


async def _current_job(conn: Conn, principal: Principal, statuses: tuple[str, ...]) -> Row | None:
    """The caller's job in progress, else their next scheduled one (as the next stop does)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT w.id FROM work_orders w
        WHERE w.assignee_id = %s AND w.status = ANY(%s)
        ORDER BY (w.status = 'in_progress') DESC, w.scheduled_start NULLS LAST, w.id LIMIT 1
        """,
        (principal.user_id, list(statuses)),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return await get_record(conn, ENTITIES["work_orders"], principal, int(row["id"]))


async def _visit(
    conn: Conn, principal: Principal, intent: str, notes: str, now: dt.datetime
) -> Done:
    """Check in (the job goes in progress) or finish the visit (done; what was said goes
    into a note on the job: voice data entry), through the store as the caller. The stop is
    the current one of the rep's planned day when a plan routes them (assistant.stops), else
    their job in progress or next scheduled one; either way the phone's day records it."""
    planned = await stops.planned_stop(conn, principal, now.date())
    if planned is not None and planned.work_order_id is None:
        return await _account_visit(conn, principal, intent, notes, now, planned)
    if planned is not None and planned.work_order_id is not None:
        job: Row | None = await get_record(
            conn, ENTITIES["work_orders"], principal, planned.work_order_id
        )
    else:
        open_ = (
            ("in_progress", "scheduled", "assigned")
            if intent == "complete_visit"
            else ("scheduled", "assigned", "new")
        )
        job = await _current_job(conn, principal, open_)
    if job is None:
        return Done(
            "You have no open job to " + ("check in to." if intent == "check_in" else "close."),
            "refused",
        )
    wo = ENTITIES["work_orders"]
    status = "in_progress" if intent == "check_in" else "done"
    undo: list[dict[str, Any]] = [
        {
            "op": "update",
            "entity": "work_orders",
            "id": int(job["id"]),
            "values": {"status": job["status"]},
        }
    ]
    if job["status"] != status:
        if status == "done" and job["status"] in ("assigned", "scheduled"):
            # the CRM's life cycle reaches done through in progress (as the phone does)
            await update_record(
                conn, wo, principal, int(job["id"]), {"status": "in_progress"}, None,
                check_etag=False,
            )  # fmt: skip
        await update_record(
            conn, wo, principal, int(job["id"]), {"status": status}, None, check_etag=False
        )
    if job.get("account_id") is not None:
        await stops.record_on_stop(
            conn, principal, now.date(), int(job["account_id"]), int(job["id"]),
            checkin_at=now if intent == "check_in" else None,
            completed=True if intent == "complete_visit" else None,
        )  # fmt: skip
    said = (
        f"Checked you in at {job['title']}."
        if intent == "check_in"
        else f"Closed the visit: {job['title']}."
    )
    if notes:
        note = await create_record(
            conn,
            ENTITIES["activities"],
            principal,
            {
                "type": "note",
                "status": "done",
                "subject": notes[:500],
                "body": notes,
                "work_order_id": job["id"],
                "account_id": job["account_id"],
                "source": "assistant",
                "tz": str(now.tzinfo or "UTC"),
            },
        )
        undo.insert(0, {"op": "delete", "entity": "activities", "id": int(note["id"])})
        said += f" Noted: {notes}."
    # A closed job cannot be reopened (the CRM's transitions): closing is not undoable.
    return Done(
        said, "done", "work_orders", int(job["id"]), {"ops": undo} if intent == "check_in" else None
    )


async def _account_visit(
    conn: Conn, principal: Principal, intent: str, notes: str, now: dt.datetime, stop: Any
) -> Done:
    """A periodic account visit of the planned day (no work order): recorded on the stop, the
    dictated notes as a note on the account."""
    account = stop.extra["account"]
    await stops.record_on_stop(
        conn, principal, now.date(), stop.account_id, None,
        checkin_at=now if intent == "check_in" else None,
        completed=True if intent == "complete_visit" else None,
    )  # fmt: skip
    said = (
        f"Checked you in at {account['name']}."
        if intent == "check_in"
        else f"Closed the visit at {account['name']}."
    )
    if notes:
        await create_record(
            conn,
            ENTITIES["activities"],
            principal,
            {
                "type": "note", "status": "done", "subject": notes[:500], "body": notes,
                "account_id": stop.account_id, "source": "assistant",
                "tz": str(now.tzinfo or "UTC"),
            },
        )  # fmt: skip
        said += f" Noted: {notes}."
    return Done(said, "done", "accounts", int(stop.account_id), None)


def _compact(v: str) -> str:
    return "".join(c for c in v.casefold() if c.isalnum())


async def _acknowledge(conn: Conn, principal: Principal, device: str) -> Done:
    """Acknowledge the active alert of the named device (or the only active one), among the
    devices the caller may see, as the alerts API does (the caller is who acknowledged it)."""
    visible, params = device_clause(principal, sql.Identifier("a", "device_id"))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            "SELECT a.alert_id, a.device_id, a.state FROM alerts a "
            "WHERE a.state = 'raised' AND {} ORDER BY a.raised_at DESC LIMIT 200"
        ).format(visible),
        params,
    )
    rows = list(await cur.fetchall())
    want = _compact(device)
    if want:
        rows = [r for r in rows if want in _compact(str(r["device_id"]))]
    if not rows:
        return Done(
            f"There is no open alert{' on ' + device if device else ''} that you can see.",
            "refused",
        )
    if len(rows) > 1:
        names = ", ".join(sorted({str(r["device_id"]) for r in rows})[:5])
        return Done(f"Several alerts are open ({names}); say which device.", "refused")
    alert = rows[0]
    await conn.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_by = %s, acknowledged_at = now() "
        "WHERE alert_id = %s AND state = 'raised'",
        (principal.email, alert["alert_id"]),
    )
    return Done(f"Acknowledged the alert on {alert['device_id']}.", "done", "alerts", None)


# field of the schema -> (tables it applies to, column)
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "name": (("accounts", "opportunities"), "name"),
    "amount": (("opportunities",), "amount"),
    "close_date": (("opportunities",), "close_date"),
    "email": (("contacts", "leads"), "email"),
    "phone": (("contacts", "leads"), "phone"),
    "title": (("contacts", "leads"), "title"),
    "priority": (("work_orders",), "priority"),
    "status": (("work_orders", "leads"), "status"),
}


async def _update(conn: Conn, principal: Principal, s: dict[str, Any], name: str) -> Done:
    f = str(s.get("field") or "")
    table = TABLE.get(str(s.get("entity")), "")
    known = FIELDS.get(f)
    if known is None or table not in known[0]:
        return Done(
            f"I can't change the {f.replace('_', ' ')} of a {s.get('entity')} from here yet.",
            "not_supported",
        )
    column = known[1]
    value: Any = s.get("value")
    if column == "amount":
        try:
            value = str(Decimal(str(value)))
        except InvalidOperation:
            return Done(f"{value!r} is not an amount.", "refused")
    _, row = await resolve(conn, principal, (table,), name)
    old = row.get(column)
    entity: Entity = ENTITIES[table]
    new = await update_record(
        conn, entity, principal, int(row["id"]), {column: value}, None, check_etag=False
    )
    return Done(
        f"Set the {f.replace('_', ' ')} of {label(table, new)} to {new.get(column)}.",
        "done",
        table,
        int(row["id"]),
        {"op": "update", "entity": table, "id": int(row["id"]), "values": {column: _jsonable(old)}},
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return v


# --------------------------------------------------------------------------- audit and undo


async def record(
    conn: Conn, principal: Principal, channel: str, text: str, u: Understanding, done: Done
) -> int:
    cur = await conn.execute(
        """
        INSERT INTO assistant_actions
            (user_id, channel, text, intent, slots, status, message, entity, record_id, undo)
        VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb) RETURNING id
        """,
        (
            principal.user_id,
            channel,
            text[:1000],
            u.intent,
            json.dumps(u.slots, default=str),
            done.status,
            done.text[:1000],
            done.entity,
            done.record_id,
            json.dumps(done.undo) if done.undo else None,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def actions(conn: Conn, principal: Principal, limit: int) -> list[Row]:
    """The caller's own assistant actions, newest first (an admin sees everyone's)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT id, user_id, at, channel, text, intent, slots, status, message, entity, record_id,
               undo IS NOT NULL AND undone_at IS NULL AS undoable, undone_at
        FROM assistant_actions WHERE %s OR user_id = %s ORDER BY id DESC LIMIT %s
        """,
        (principal.is_admin, principal.user_id, limit),
    )
    return list(await cur.fetchall())


async def undo(conn: Conn, principal: Principal, action_id: int) -> Row:
    """Undo one carried-out action of the caller's, through the store; once."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM assistant_actions WHERE id = %s AND user_id = %s FOR UPDATE",
        (action_id, principal.user_id),
    )
    action = await cur.fetchone()
    if action is None:
        raise ApiError(f"no assistant action {action_id} of yours", code="not_found", status=404)
    if action["undo"] is None:
        raise ApiError(
            "that action cannot be undone (it created or changed nothing that can be put back)",
            code="conflict",
            status=409,
        )
    if action["undone_at"] is not None:
        raise ApiError("that action was already undone", code="conflict", status=409)
    first = action["undo"]
    for spec in first.get("ops", [first]):
        entity = ENTITIES[spec["entity"]]
        if spec["op"] == "delete":
            await get_record(conn, entity, principal, int(spec["id"]))  # 404 if gone or hidden
            await delete_record(conn, entity, principal, int(spec["id"]), "*")
        else:
            await update_record(
                conn,
                entity,
                principal,
                int(spec["id"]),
                dict(spec["values"]),
                None,
                check_etag=False,
            )
    spec = first.get("ops", [first])[-1]
    await cur.execute(
        "UPDATE assistant_actions SET undone_at = now() WHERE id = %s RETURNING undone_at",
        (action_id,),
    )
    return {"id": action_id, "undone": True, "entity": spec["entity"], "record_id": spec["id"]}


# --------------------------------------------------------------------------- analytics


def outcome(intent: str, actions: list[dict[str, Any]], needs_confirmation: bool) -> str:
    """What became of one message: done, refused, asked (a question back), confirm (awaiting
    a yes), answered (a read), out_of_scope."""
    if intent == "out_of_scope":
        return "out_of_scope"
    if needs_confirmation:
        return "confirm"
    status = str(actions[0].get("status") or actions[0].get("type")) if actions else ""
    if status in ("disambiguate", "asked"):
        return "asked"
    if status in ("done", "refused", "not_found", "not_supported"):
        return "done" if status == "done" else "refused"
    return "answered"


async def log_message(
    conn: Conn, principal: Principal, channel: str, intent: str, by: str, confidence: float,
    result: str, latency_ms: float, command: str | None = None,
) -> None:  # fmt: skip
    """One message for the analytics; `command`: the workflow command it said, if any."""
    await conn.execute(
        "INSERT INTO assistant_messages (user_id, channel, intent, decided_by, confidence, outcome,"
        " latency_ms, command) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (principal.user_id, channel, intent, by[:40], confidence, result, latency_ms,
         command[:60] if command else None),
    )  # fmt: skip
