"""A contact's journey (every touch on one time line) and channel analytics.

The journey merges, newest first: the contact's messages of every channel (engage), its
e-mails' opens and clicks, and from the CRM (through its service, so the caller's record
scope applies) the activities of the contact and its account, the account's deals and
work orders. `channel` filters it (email, sms, chat, note, crm). The contact's preferred
channel and hour are learned from when and how they write to us.

Analytics per channel over a window: messages in and out, conversations, the median time
to the first response and to resolution; per template: sent, open, click and reply rates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from crm.entities import ACTIVITIES, CONTACTS, OPPORTUNITIES, WORK_ORDERS
from crm.filters import Sort
from crm.store import get_record, list_records
from engage import engagement
from kernel.principal import Principal

JOURNEY_LIMIT = 200


async def _crm(
    conn: AsyncConnection[Any],
    p: Principal,
    entity: Any,
    sort_field: str,
    cond: sql.Composable,
    params: list[Any],
) -> list[dict[str, Any]]:
    f = entity.field(sort_field)
    assert f is not None
    page = await list_records(
        conn, entity, p, sort=Sort(f, True), limit=JOURNEY_LIMIT, extra=(cond, params)
    )
    return page.items


async def journey(
    conn: AsyncConnection[Any], p: Principal, contact_id: int, channel: str | None
) -> dict[str, Any]:
    contact = await get_record(conn, CONTACTS, p, contact_id)
    cur = await conn.execute(
        "SELECT account_id FROM account_contacts WHERE contact_id = %s"
        " ORDER BY (role = 'primary') DESC, account_id LIMIT 1",
        (contact_id,),
    )
    row = await cur.fetchone()
    account_id = int(row[0]) if row else None
    items: list[dict[str, Any]] = []
    dc = conn.cursor(row_factory=dict_row)
    if channel in (None, "email", "sms", "chat", "note"):
        await dc.execute(
            "SELECT id, conversation_id, channel, direction, kind, subject, body_text, created_at"
            " FROM engage_messages WHERE contact_id = %s AND (%s::text IS NULL OR channel = %s)"
            " ORDER BY created_at DESC LIMIT %s",
            (contact_id, channel, channel, JOURNEY_LIMIT),
        )
        for m in await dc.fetchall():
            items.append(
                {
                    "at": m["created_at"],
                    "kind": f"{m['channel']}_{m['direction']}"
                    + ("" if m["kind"] == "message" else f"_{m['kind']}"),
                    "channel": m["channel"],
                    "title": (m["subject"] or m["body_text"] or "")[:200],
                    "ref": f"conversation:{m['conversation_id']}",
                }
            )
    if channel in (None, "email"):
        await dc.execute(
            "SELECT e.kind, e.at, e.url, o.subject, o.id FROM engage_events e"
            " JOIN engage_outbox o ON o.id = e.outbox_id WHERE e.contact_id = %s"
            " ORDER BY e.at DESC LIMIT %s",
            (contact_id, JOURNEY_LIMIT),
        )
        for e in await dc.fetchall():
            items.append(
                {
                    "at": e["at"],
                    "kind": f"email_{e['kind']}",
                    "channel": "email",
                    "title": (e["url"] or e["subject"] or "")[:200],
                    "ref": f"email:{e['id']}",
                }
            )
    if channel in (None, "crm"):
        cond = sql.SQL("(t.contact_id = %s OR t.account_id = %s) AND t.source <> 'engage'")
        for a in await _crm(conn, p, ACTIVITIES, "occurred_at", cond, [contact_id, account_id]):
            items.append(
                {
                    "at": a["occurred_at"],
                    "kind": f"activity_{a['type']}",
                    "channel": "crm",
                    "title": a["subject"],
                    "ref": f"activity:{a['id']}",
                }
            )
        if account_id is not None:
            acc = sql.SQL("t.account_id = %s")
            for o in await _crm(conn, p, OPPORTUNITIES, "updated_at", acc, [account_id]):
                items.append(
                    {
                        "at": o["updated_at"],
                        "kind": "deal",
                        "channel": "crm",
                        "title": str(o.get("name") or ""),
                        "ref": f"opportunity:{o['id']}",
                    }
                )
            for w in await _crm(conn, p, WORK_ORDERS, "updated_at", acc, [account_id]):
                items.append(
                    {
                        "at": w["updated_at"],
                        "kind": f"work_order_{w.get('status')}",
                        "channel": "crm",
                        "title": str(w.get("title") or w.get("subject") or ""),
                        "ref": f"work_order:{w['id']}",
                    }
                )
    items.sort(key=lambda i: i["at"] or datetime.min, reverse=True)
    learned = await engagement.preferred(conn, contact_id)
    return {
        "contact_id": contact["id"],
        "account_id": account_id,
        "preferred_channel": learned.channel,
        "preferred_hour_utc": learned.hour_utc,
        "items": items[:JOURNEY_LIMIT],
    }


async def analytics(conn: AsyncConnection[Any], days: int) -> dict[str, Any]:
    dc = conn.cursor(row_factory=dict_row)
    await dc.execute(
        "SELECT channel, count(*) FILTER (WHERE direction = 'in') AS inbound,"
        " count(*) FILTER (WHERE direction = 'out') AS outbound,"
        " count(DISTINCT conversation_id) AS conversations"
        " FROM engage_messages WHERE created_at > now() - make_interval(days => %s)"
        " AND channel <> 'note' GROUP BY channel ORDER BY channel",
        (days,),
    )
    per_channel = {r["channel"]: {**r} for r in await dc.fetchall()}
    await dc.execute(
        "SELECT last_channel AS channel,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at))"
        "   FILTER (WHERE first_response_at IS NOT NULL) AS median_first_response_s,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))"
        "   FILTER (WHERE resolved_at IS NOT NULL) AS median_resolution_s"
        " FROM engage_conversations WHERE created_at > now() - make_interval(days => %s)"
        " GROUP BY last_channel",
        (days,),
    )
    for r in await dc.fetchall():
        ch = r["channel"] or "unknown"
        per_channel.setdefault(ch, {"channel": ch, "inbound": 0, "outbound": 0, "conversations": 0})
        per_channel[ch]["median_first_response_s"] = r["median_first_response_s"]
        per_channel[ch]["median_resolution_s"] = r["median_resolution_s"]
    await dc.execute(
        "SELECT coalesce(t.name, '(no template)') AS template, count(*) AS sent,"
        " count(o.opened_at) AS opened, count(o.clicked_at) AS clicked,"
        " count(DISTINCT ev.outbox_id) AS replied"
        " FROM engage_outbox o LEFT JOIN engage_templates t ON t.id = o.template_id"
        " LEFT JOIN engage_events ev ON ev.outbox_id = o.id AND ev.kind = 'reply'"
        " WHERE o.state = 'sent' AND o.sent_at > now() - make_interval(days => %s)"
        " GROUP BY 1 ORDER BY 2 DESC LIMIT 200",
        (days,),
    )
    templates = []
    for r in await dc.fetchall():
        n = max(int(r["sent"]), 1)
        templates.append(
            {
                "template": r["template"],
                "sent": r["sent"],
                "open_rate": r["opened"] / n,
                "click_rate": r["clicked"] / n,
                "reply_rate": r["replied"] / n,
            }
        )
    return {"days": days, "channels": list(per_channel.values()), "templates": templates}
