"""The technician's ETA, told to the customer by SMS or e-mail from the routing plan.

Every ETA_EVERY_S (`engage.eta` job) the newest ready plan of each territory and day is
read (routing's `routing_stops`: a re-plan is a newer plan). For each planned visit with
an open work order whose arrival is ahead (within HORIZON_S), the account's primary
contact is told "your technician <name> arrives at about HH:MM" (the rep's time zone):

- once per work order (`engage_eta_notices`), and again only when a newer plan moves the
  arrival by ETA_CHANGE_S or more (an update, not a repeat of the same time);
- on the contact's learned channel when it is SMS or e-mail, else SMS when the contact has
  a phone, else e-mail; consent for the `service` purpose is checked on that channel (a
  refusal tries the other channel, and with neither nothing is sent);
- e-mail from the rep's own mailbox, else the first team mailbox; SMS through the
  `engage.sms` job. Both land in the contact's conversation like any other message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from engage import consent, conversations, engagement, send
from engage.channels import SMS_TASK, normalise_phone
from engage.timeline import Link
from kernel.errors import ApiError
from kernel.jobs import enqueue

log = logging.getLogger(__name__)

ETA_TASK = "engage.eta"
ETA_EVERY_S = 60.0
ETA_CHANGE_S = 15 * 60
HORIZON_S = 24 * 3600
BATCH = 200

_DUE = """
WITH latest AS (
    SELECT DISTINCT ON (territory_id, plan_date) id
    FROM routing_plans
    WHERE status = 'ready' AND plan_date BETWEEN current_date - 1 AND current_date + 1
    ORDER BY territory_id, plan_date, id DESC
)
SELECT s.plan_id, s.work_order_id, s.rep_id, s.eta, w.title,
       u.name AS rep_name, u.timezone AS rep_tz,
       (SELECT ac.contact_id FROM account_contacts ac WHERE ac.account_id = w.account_id
        ORDER BY (ac.role = 'primary') DESC, ac.contact_id LIMIT 1) AS contact_id,
       n.work_order_id IS NOT NULL AS told
FROM routing_stops s
JOIN latest l ON l.id = s.plan_id
JOIN work_orders w ON w.id = s.work_order_id
LEFT JOIN users u ON u.id = s.rep_id
LEFT JOIN engage_eta_notices n ON n.work_order_id = s.work_order_id
WHERE s.eta > now() AND s.eta < now() + make_interval(secs => %s)
  AND w.status NOT IN ('done', 'cancelled', 'in_progress')
  AND (n.work_order_id IS NULL
       OR (n.plan_id <> s.plan_id AND abs(extract(epoch FROM s.eta - n.eta)) >= %s))
ORDER BY s.eta
LIMIT %s
"""


@dataclass(frozen=True, slots=True)
class EtaNotice:
    work_order_id: int
    contact_id: int
    channel: str
    eta: datetime
    update: bool


def eta_text(
    rep_name: str | None, eta: datetime, tz_name: str | None, *, update: bool, now: datetime
) -> str:
    """The customer's message (pure): the day is named unless the arrival is on `now`'s day,
    both read in the rep's zone."""
    try:
        tz = ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = eta.astimezone(tz)
    who = (rep_name or "").split()[0] if rep_name else ""
    tech = f"Your technician {who}" if who else "Your technician"
    when = f"{local:%H:%M}" + (
        "" if local.date() == now.astimezone(tz).date() else f" on {local:%d %b}"
    )
    lead = "Update: " if update else ""
    return f"{lead}{tech} arrives at about {when}."


async def _sender_mailbox(conn: AsyncConnection[Any], rep_id: int | None) -> int | None:
    cur = await conn.execute(
        "SELECT id FROM engage_mailboxes WHERE (owner_user_id = %s AND kind = 'user')"
        " OR kind = 'team' ORDER BY (owner_user_id = %s) DESC NULLS LAST, id LIMIT 1",
        (rep_id, rep_id),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def _contact(conn: AsyncConnection[Any], contact_id: int) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT id, email, phone FROM contacts WHERE id = %s AND merged_into_id IS NULL",
        (contact_id,),
    )
    return await cur.fetchone()


async def _channels(conn: AsyncConnection[Any], c: dict[str, Any]) -> list[str]:
    """The channels to try, in order, that the contact can be reached on and agreed to."""
    have = []
    if c["phone"] and normalise_phone(c["phone"]):
        have.append("sms")
    if c["email"]:
        have.append("email")
    learned = (await engagement.preferred(conn, int(c["id"]))).channel
    if learned in have:
        have.remove(learned)
        have.insert(0, learned)
    out = []
    for ch in have:
        reason = await consent.refusal(
            conn,
            contact_id=int(c["id"]),
            channel=ch,
            purpose="service",
            address=c["email"] if ch == "email" else None,
        )
        if reason is None:
            out.append(ch)
    return out


async def notify_one(
    conn: AsyncConnection[Any], config: send.SendConfig, row: dict[str, Any]
) -> EtaNotice | None:
    """Tell one work order's contact its ETA (in the caller's transaction)."""
    if row["contact_id"] is None:
        return None
    c = await _contact(conn, int(row["contact_id"]))
    if c is None:
        return None
    wo, plan = int(row["work_order_id"]), int(row["plan_id"])
    text = eta_text(
        row["rep_name"], row["eta"], row["rep_tz"], update=bool(row["told"]), now=datetime.now(UTC)
    )
    sent_on = None
    for ch in await _channels(conn, c):
        if ch == "sms":
            phone = normalise_phone(c["phone"])
            assert phone is not None
            conv = await conversations.conversation_for(
                conn, link=Link(contact_id=c["id"]), channel="sms", subject=None, refs=[],
                address=None,
            )  # fmt: skip
            mid = await conversations.add_message(
                conn,
                conversation_id=conv,
                channel="sms",
                direction="out",
                contact_id=c["id"],
                to_addr=phone,
                body_text=text,
                external_id=f"sms-eta:{wo}:{plan}",
            )
            if mid is not None:
                await enqueue(conn, SMS_TASK, {"message_id": mid}, max_attempts=8)
            sent_on = "sms"
            break
        box = await _sender_mailbox(conn, row["rep_id"])
        if box is None:
            log.info("engage: no mailbox to e-mail the ETA of work order %s from", wo)
            continue
        await send.enqueue_email(
            conn,
            idempotency_key=f"eta:{wo}:{plan}",
            config=config,
            sender_mailbox_id=box,
            contact_id=int(c["id"]),
            subject=f"Your technician's arrival: {row['title']}"[:200],
            html=f"<p>Hello {{{{contact.first_name}}}},</p><p>{text}</p>",
            text=f"Hello {{{{contact.first_name}}}},\n\n{text}\n",
            purpose="service",
        )
        sent_on = "email"
        break
    if sent_on is None:
        return None
    await conn.execute(
        "INSERT INTO engage_eta_notices (work_order_id, plan_id, rep_id, contact_id, eta, channel)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (work_order_id) DO UPDATE SET"
        " plan_id = excluded.plan_id, rep_id = excluded.rep_id, contact_id = excluded.contact_id,"
        " eta = excluded.eta, channel = excluded.channel,"
        " notices = engage_eta_notices.notices + 1, sent_at = now()",
        (wo, plan, row["rep_id"], c["id"], row["eta"], sent_on),
    )
    return EtaNotice(wo, int(c["id"]), sent_on, row["eta"], bool(row["told"]))


async def notify_etas(conn: AsyncConnection[Any], config: send.SendConfig) -> list[EtaNotice]:
    """One pass: every due ETA message (each in its own transaction)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_DUE, (HORIZON_S, ETA_CHANGE_S, BATCH))
    rows = await cur.fetchall()
    await conn.commit()
    out = []
    for row in rows:
        try:
            async with conn.transaction():
                got = await notify_one(conn, config, row)
        except ApiError as exc:  # this one cannot be sent (no address ...): the others can
            log.warning("engage: ETA of work order %s: %s", row["work_order_id"], exc.message)
            continue
        if got is not None:
            out.append(got)
    return out
