"""Carrying out workflow commands (assistant.commands), as the caller, after a yes.

- **Start my route** (a rep): today's stops as the phone shows them (phone.dayrepo: the
  newest ready plan's route, then assigned work orders it lacks). Confirmed, the rep's stops
  in the plan are accepted (routing's own acceptance: a re-plan keeps them with the rep),
  the start is recorded once per rep and day (`assistant_route_starts`), a note "on the
  way" goes on the first stop's account and work order, and the first customer is told the
  ETA by engage (engage.eta.notify_one: the contact's channel and consent), the planned
  arrival or, when the rep starts late, now plus the planned drive; not again when engage
  already told them a time within ETA_CHANGE_S of it.
- **Escalate this alert**: the alert in the conversation's context (`alert_id` in the
  context's slots), else the newest open alert of the device the user is looking at
  (`device_id` of the message), else the newest open alert on the
  assets of the rep's current stop, else the caller's only open alert; always among the
  devices the caller may see (telemetry.access: the alerts API's rule, so a rep never
  escalates another territory's alert). Confirmed: the severity goes one step up (it then
  needs a fresh acknowledgement, as alerts.model escalates; automation's `alert.escalated`
  fires), the alert's work order becomes urgent (or an urgent one is opened on the asset's
  account, through the CRM store as the caller) and the service manager (the caller's
  manager, else the managers of the account's territory) is notified, urgently.
- **An admin's voice-triggered workflow** (automation trigger `voice`): started through
  automation.service.start_voice (the roles it names, once per command), from the
  speaker's current stop when the trigger names an `object`.

Every confirmed command is audited in assistant_actions like the other writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from alerts.wording import alert_title
from assistant import commands, writes
from assistant.act import Answer
from assistant.understand import Understanding
from automation import service as automation
from crm.entities import ENTITIES
from crm.store import create_record, get_record, update_record
from engage import eta as engage_eta
from engage.send import send_config
from kernel.errors import ApiError
from kernel.principal import Principal
from kernel.settings import Settings
from notify.service import notify_user
from phone import dayrepo
from routing import store as routing_store
from telemetry.access import device_clause

log = logging.getLogger(__name__)
Conn = AsyncConnection[Any]
Row = dict[str, Any]

SEVERITIES = ("info", "warning", "critical")
OPEN_WO = ("new", "assigned", "scheduled", "in_progress")


@dataclass
class Outcome:
    """One command's answer; `slots` go into the context (what a "yes" acts on)."""

    text: str
    status: str  # done | refused | asked | answered | awaiting_confirmation
    slots: dict[str, Any] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    entity: str | None = None
    record_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def commands_for(conn: Conn, principal: Principal) -> list[commands.Command]:
    """The built-in commands and the active voice workflows the caller's role may say."""
    out = commands.built_in()
    for w in await automation.voice_commands(conn):
        if w["roles"] and principal.role not in w["roles"]:
            continue
        out.append(
            commands.Command(
                f"{commands.AUTOMATION}{w['workflow_id']}", w["name"], tuple(w["phrases"]), False
            )
        )
    return out


async def carry_out(
    conn: Conn,
    principal: Principal,
    settings: Settings,
    command: commands.Command,
    *,
    text: str,
    sentence: str,
    now: dt.datetime,
    confirm: bool,
    context: dict[str, Any],
    confidence: float,
    by: str,
    channel: str,
) -> tuple[Understanding, Answer]:
    """Answer one workflow command: the question before the write, or the write itself
    (in one transaction: a refusal leaves nothing half done), audited."""
    slots: dict[str, Any] = {"command": command.key}
    for k in ("alert_id", "device_id"):
        if isinstance(context.get(k), str):
            slots[k] = context[k]
    try:
        async with conn.transaction():
            out = await _run(
                conn, principal, settings, command, text, sentence, now, confirm, slots
            )
    except ApiError as exc:
        out = Outcome(f"I could not do that: {exc.message}", "refused")
    slots.update(out.slots)
    u = Understanding(commands.WORKFLOW_INTENT, slots, confidence, by)
    action: dict[str, Any] = {
        "type": command.key.split(":")[0],
        "command": command.key,
        "name": command.name,
        "status": out.status,
        **out.extra,
    }
    if confirm and out.status in ("done", "refused"):
        done = writes.Done(out.text, out.status, out.entity, out.record_id)
        action["action_id"] = await writes.record(conn, principal, channel, text, u, done)
        if out.entity and out.record_id is not None:
            action.update(entity=out.entity, id=out.record_id, undoable=False)
    pending = out.status == "awaiting_confirmation"
    return u, Answer(out.text, [action], out.links, needs_confirmation=pending)


async def _run(
    conn: Conn,
    principal: Principal,
    settings: Settings,
    command: commands.Command,
    text: str,
    sentence: str,
    now: dt.datetime,
    confirm: bool,
    slots: dict[str, Any],
) -> Outcome:
    if not principal.can_write:
        return Outcome("You have read-only access: I can't start workflows for you.", "refused")
    if command.key == commands.START_ROUTE:
        return await start_route(conn, principal, settings, now, confirm)
    if command.key == commands.ESCALATE_ALERT:
        return await escalate_alert(
            conn, principal, now, confirm, slots.get("alert_id"), slots.get("device_id")
        )
    workflow_id = int(command.key.removeprefix(commands.AUTOMATION))
    return await start_workflow(conn, principal, workflow_id, command, text, sentence, confirm)


# --------------------------------------------------------------------------- start my route


def _hhmm(at: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    return at.astimezone(tz).strftime("%H:%M") if at is not None else ""


async def start_route(
    conn: Conn, principal: Principal, settings: Settings, now: dt.datetime, confirm: bool
) -> Outcome:
    day = now.date()
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT started_at, stops FROM assistant_route_starts WHERE user_id = %s AND day = %s",
        (principal.user_id, day),
    )
    started = await cur.fetchone()
    if started is not None:
        return Outcome(
            f"Your route was already started at {_hhmm(started['started_at'], now.tzinfo)} "
            f"with {started['stops']} stops. Say \u201cnext stop\u201d for where to go.",
            "answered",
        )
    plan_id, day_stops = await dayrepo.load_day(conn, principal.user_id, day)
    stops = [
        s
        for s in day_stops
        if not s.extra.get("completed")
        and (s.extra.get("work_order") or {}).get("status", "scheduled") in OPEN_WO
    ]
    if not stops:
        return Outcome("You have no stops today: there is no route to start.", "refused")
    first = stops[0]
    account = first.extra["account"]
    wo = first.extra.get("work_order")
    what = f"{account['name']}" + (f" ({wo['title']})" if wo else "")
    when = f" at {_hhmm(first.eta, now.tzinfo)}" if first.eta else ""
    n = len(stops)
    summary = {"stops": n, "plan_id": plan_id, "first_account_id": account["id"]}
    if not confirm:
        return Outcome(
            f"Start your route with {n} stop{'s' if n != 1 else ''}? First: {what}{when}.",
            "awaiting_confirmation",
            extra=summary,
        )
    arrival: dt.datetime | None = first.eta
    if plan_id is not None:
        mine = [
            s
            for s in await routing_store.get_stops(conn, plan_id)
            if s["rep_id"] == principal.user_id
        ]
        for s in mine:
            await routing_store.update_stop(
                conn, plan_id, s["visit_key"], None, True, only_rep_id=principal.user_id
            )
        leg = next((s for s in mine if s["seq"] == first.seq), None)
        if leg is not None:
            # starting late: now plus the planned drive, never earlier than planned
            arrival = max(leg["eta"], now + dt.timedelta(seconds=float(leg["travel_s"])))
    await cur.execute(
        "INSERT INTO assistant_route_starts (user_id, day, plan_id, stops, first_account_id,"
        " first_work_order_id, first_eta) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (user_id, day) DO NOTHING RETURNING started_at",
        (principal.user_id, day, plan_id, n, account["id"], wo["id"] if wo else None, arrival),
    )
    if await cur.fetchone() is None:  # a second confirmation raced this one
        return Outcome("Your route was already started.", "answered")
    at = f" at about {_hhmm(arrival, now.tzinfo)}" if arrival else ""
    await create_record(
        conn,
        ENTITIES["activities"],
        principal,
        {
            "type": "note",
            "status": "done",
            "subject": f"On the way to {account['name']}{at}"[:500],
            "body": f"Route started with {n} stops; this is the first.",
            "account_id": account["id"],
            **({"work_order_id": wo["id"]} if wo else {}),
            "source": "assistant",
            "tz": str(now.tzinfo or "UTC"),
        },
    )
    told = ""
    if wo is not None and arrival is not None and plan_id is not None:
        told = await _tell_eta(conn, principal, settings, plan_id, int(wo["id"]), arrival)
        if told:
            await cur.execute(
                "UPDATE assistant_route_starts SET eta_channel = %s WHERE user_id = %s AND day = %s",
                (told.split(":")[0], principal.user_id, day),
            )
    said = {
        "sms": f" {account['name']} was told by text message that you arrive{at}.",
        "email": f" {account['name']} was told by e-mail that you arrive{at}.",
        "already": f" {account['name']} already knows you arrive{at}.",
    }.get(told.split(":")[0], "")
    links = (
        [f"/console/#/r/work_orders/{wo['id']}"] if wo else [f"/console/#/account/{account['id']}"]
    )
    if plan_id is not None:
        links.append(f"/api/v1/routing/plans/{plan_id}")
    return Outcome(
        f"Route started: {n} stop{'s' if n != 1 else ''}. First: {what}{at}.{said}",
        "done",
        links=links,
        entity="work_orders" if wo else "accounts",
        record_id=int(wo["id"]) if wo else int(account["id"]),
        extra={**summary, "eta": arrival.isoformat() if arrival else None, "eta_told": told},
    )


async def _tell_eta(
    conn: Conn,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    work_order_id: int,
    arrival: dt.datetime,
) -> str:
    """Tell the first customer the ETA through engage; 'sms' / 'email', 'already' (told a
    time close to it before), or '' (no contact, no channel or consent)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT eta FROM engage_eta_notices WHERE work_order_id = %s", (work_order_id,)
    )
    before = await cur.fetchone()
    if (
        before is not None
        and abs((before["eta"] - arrival).total_seconds()) < engage_eta.ETA_CHANGE_S
    ):
        return "already"
    await cur.execute(
        """
        SELECT w.id AS work_order_id, w.title, u.name AS rep_name, u.timezone AS rep_tz,
               (SELECT ac.contact_id FROM account_contacts ac WHERE ac.account_id = w.account_id
                ORDER BY (ac.role = 'primary') DESC, ac.contact_id LIMIT 1) AS contact_id
        FROM work_orders w, users u WHERE w.id = %s AND u.id = %s
        """,
        (work_order_id, principal.user_id),
    )
    row = await cur.fetchone()
    if row is None:
        return ""
    row.update(plan_id=plan_id, rep_id=principal.user_id, eta=arrival, told=before is not None)
    try:
        async with conn.transaction():  # a savepoint: the route starts even if this fails
            notice = await engage_eta.notify_one(conn, send_config(settings), row)
    except ApiError as exc:
        log.info("assistant: ETA of work order %s not sent: %s", work_order_id, exc.message)
        return ""
    return notice.channel if notice is not None else ""


# --------------------------------------------------------------------------- escalate this alert


async def _alerts(conn: Conn, principal: Principal, alert_id: str | None) -> list[Row]:
    visible, params = device_clause(principal, sql.Identifier("a", "device_id"))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            "SELECT a.alert_id, a.device_id, a.alert_type, a.severity, a.state, a.occurrences,"
            " s.account_id, acc.name AS account, acc.territory_id"
            " FROM alerts a LEFT JOIN assets s ON s.device_id = a.device_id"
            " LEFT JOIN accounts acc ON acc.id = s.account_id"
            " WHERE a.state <> 'cleared' AND (%s::text IS NULL OR a.alert_id = %s) AND {}"
            " ORDER BY a.raised_at DESC LIMIT 50"
        ).format(visible),
        [alert_id, alert_id, *params],
    )
    return list(await cur.fetchall())


async def _which_alert(
    conn: Conn, principal: Principal, alert_id: str | None, device_id: str | None
) -> tuple[Row | None, str]:
    """The alert meant, or None and what to say."""
    if alert_id:
        rows = await _alerts(conn, principal, alert_id)
        if not rows:
            return None, "That alert is not open, or not one you can see; nothing was changed."
        return rows[0], ""
    rows = await _alerts(conn, principal, None)
    if device_id:
        on_screen = [r for r in rows if r["device_id"] == device_id]
        if not on_screen:
            return None, f"{device_id} has no open alert that you can see; nothing was changed."
        return on_screen[0], ""
    if not rows:
        return None, "There is no open alert that you can see."
    job = await writes._current_job(conn, principal, ("in_progress", "scheduled", "assigned"))
    here = [r for r in rows if job is not None and r["account_id"] == job["account_id"]]
    if here:
        return here[0], ""
    if len(rows) == 1:
        return rows[0], ""
    names = ", ".join(f"{r['device_id']} ({alert_title(r['alert_type'])})" for r in rows[:5])
    return None, (
        f"Which alert? {len(rows)} are open: {names}. Open one and say \u201cescalate this alert\u201d."
    )


async def _service_managers(
    conn: Conn, principal: Principal, territory_id: int | None
) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT m.id, m.name FROM users u JOIN users m ON m.id = u.manager_id
        WHERE u.id = %s AND m.active
        """,
        (principal.user_id,),
    )
    found = list(await cur.fetchall())
    if found:
        return found
    await cur.execute(
        "SELECT id, name FROM users WHERE role = 'manager' AND active AND territory_id = %s"
        " AND id <> %s ORDER BY id LIMIT 5",
        (territory_id, principal.user_id),
    )
    return list(await cur.fetchall())


async def escalate_alert(
    conn: Conn,
    principal: Principal,
    now: dt.datetime,
    confirm: bool,
    alert_id: str | None,
    device_id: str | None = None,
) -> Outcome:
    alert, why = await _which_alert(conn, principal, alert_id, device_id)
    if alert is None:
        return Outcome(why, "refused" if alert_id or device_id else "asked")
    title = alert_title(alert["alert_type"])
    where = f" at {alert['account']}" if alert["account"] else ""
    rank = SEVERITIES.index(alert["severity"])
    severity = SEVERITIES[min(rank + 1, len(SEVERITIES) - 1)]
    managers = await _service_managers(conn, principal, alert["territory_id"])
    who = ", ".join(str(m["name"]) for m in managers) or "no service manager"
    pin = {"alert_id": alert["alert_id"]}
    if not confirm:
        return Outcome(
            f"Escalate the {alert['severity']} alert \u201c{title}\u201d on {alert['device_id']}{where}? "
            f"It becomes {severity}, its work order urgent, and {who} will be told.",
            "awaiting_confirmation",
            slots=pin,
            extra={"alert_id": alert["alert_id"], "device_id": alert["device_id"]},
        )
    if severity != alert["severity"]:
        # up one step, which asks for a fresh acknowledgement (alerts.model's escalation)
        await conn.execute(
            "UPDATE alerts SET severity = %s, state = 'raised' WHERE alert_id = %s",
            (severity, alert["alert_id"]),
        )
    wo = await _urgent_work_order(conn, principal, alert, title)
    link = (
        f"/console/#/r/work_orders/{wo['id']}" if wo else f"/console/#/device/{alert['device_id']}"
    )
    for m in managers:
        await notify_user(
            conn,
            user_id=int(m["id"]),
            kind="alert.escalated",
            title=f"Escalated: {title} on {alert['device_id']}{where}"[:200],
            body=f"{principal.email} escalated this alert"
            + (f"; work order #{wo['id']} is urgent." if wo else "."),
            link=link,
            urgent=True,
            dedupe_key=f"assistant.escalate:{alert['alert_id']}:{severity}:{wo['id'] if wo else 0}",
        )
    parts = [f"Escalated \u201c{title}\u201d on {alert['device_id']}{where}: now {severity}"]
    parts.append(f"work order #{wo['id']} is urgent" if wo else "no asset account for a work order")
    parts.append(f"{who} notified" if managers else "no service manager to notify")
    return Outcome(
        ", ".join(parts) + ".",
        "done",
        slots=pin,
        links=[link, "/console/#/alerts"],
        entity="work_orders" if wo else None,
        record_id=int(wo["id"]) if wo else None,
        extra={
            "alert_id": alert["alert_id"],
            "severity": severity,
            "work_order_id": wo["id"] if wo else None,
            "notified": [int(m["id"]) for m in managers],
        },
    )


async def _urgent_work_order(
    conn: Conn, principal: Principal, alert: Row, title: str
) -> Row | None:
    """The alert's open work order made urgent, or a new urgent one on the asset's account;
    through the CRM store as the caller. None when the device has no asset account."""
    if alert["account_id"] is None:
        return None
    entity = ENTITIES["work_orders"]
    cur = await conn.execute(
        "SELECT id FROM work_orders WHERE ((source = 'alert' AND source_ref = %s)"
        " OR custom->>'alert_id' = %s) AND status = ANY(%s) ORDER BY id DESC LIMIT 1",
        (f"alert:{alert['alert_id']}", alert["alert_id"], list(OPEN_WO)),
    )
    found = await cur.fetchone()
    if found is not None:
        current = await get_record(conn, entity, principal, int(found[0]))
        if current["priority"] == "urgent":
            return current
        return await update_record(
            conn, entity, principal, int(found[0]), {"priority": "urgent"}, None, check_etag=False
        )
    return await create_record(
        conn,
        entity,
        principal,
        {
            "account_id": alert["account_id"],
            "title": f"Escalated: {title} on {alert['device_id']}"[:300],
            "description": f"Escalated by {principal.email} through the assistant.",
            "priority": "urgent",
            "source": "assistant",
            # JSON columns go to the store as JSON text
            "custom": json.dumps({"alert_id": alert["alert_id"], "device_id": alert["device_id"]}),
        },
    )


# --------------------------------------------------------------------------- an admin's workflow


async def start_workflow(
    conn: Conn,
    principal: Principal,
    workflow_id: int,
    command: commands.Command,
    text: str,
    sentence: str,
    confirm: bool,
) -> Outcome:
    obj = next(
        (
            w["object"]
            for w in await automation.voice_commands(conn)
            if w["workflow_id"] == workflow_id
        ),
        None,
    )
    record: tuple[str, int] | None = None
    if obj is not None:
        job = await writes._current_job(conn, principal, ("in_progress", "scheduled", "assigned"))
        if job is None:
            return Outcome(
                f"\u201c{command.name}\u201d starts from your current stop, and you have none.",
                "refused",
            )
        record = ("work_orders", int(job["id"])) if obj == "work_orders" else (
            "accounts", int(job["account_id"])
        )  # fmt: skip
    if not confirm:
        on = f" for {record[0].removesuffix('s').replace('_', ' ')} {record[1]}" if record else ""
        return Outcome(
            f"Start the workflow \u201c{command.name}\u201d{on}?",
            "awaiting_confirmation",
            extra={"workflow_id": workflow_id},
        )
    run_id, started = await automation.start_voice(
        conn,
        principal,
        workflow_id,
        text=text,
        phrase=sentence,
        record_object=record[0] if record else None,
        record_id=record[1] if record else None,
    )
    said = (
        f"Started \u201c{command.name}\u201d."
        if started
        else f"\u201c{command.name}\u201d was started a moment ago; it runs once."
    )
    return Outcome(
        said,
        "done",
        links=[f"/api/v1/automation/runs/{run_id}"],
        extra={"workflow_id": workflow_id, "run_id": run_id, "started": started},
    )
