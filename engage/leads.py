"""Leads from unknown senders, by a rule per connected mailbox.

When a mailbox's rule is on (`leads_from_unknown`), an inbound e-mail whose sender links
to nothing (no contact, no lead, and no account by domain) becomes a lead owned by the
mailbox's owner, unless:

- it is an auto-reply or a bounce (never a person writing), or comes from a system address
  (`noreply@`, `mailer-daemon@`, `postmaster@` ...) or from the mailbox's own domain
  (a colleague);
- the address already made a lead (one lead per address: `engage_lead_origins`, checked
  under a per-address lock, so two syncs at once never make two);
- the mailbox's rule made `leads_per_day` leads in the last 24 hours (a flood of spam
  stays messages, not leads; the message itself is kept either way).

The lead goes through `crm.store.create_record`, so the CRM's own rules (assignment,
validation, audit) apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from crm.entities import LEADS
from crm.store import create_record
from engage.timeline import PUBLIC_DOMAINS, Link, engage_principal
from kernel.errors import ApiError

log = logging.getLogger(__name__)

SYSTEM_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "mailer-daemon",
        "postmaster",
        "bounce",
        "bounces",
        "notifications",
    }
)


@dataclass(frozen=True, slots=True)
class LeadRule:
    mailbox_id: int
    mailbox_address: str
    owner_user_id: int | None
    per_day: int

    @classmethod
    def of(cls, mailbox_row: dict[str, Any]) -> LeadRule | None:
        if not mailbox_row.get("leads_from_unknown"):
            return None
        return cls(
            int(mailbox_row["id"]),
            str(mailbox_row["address"]),
            mailbox_row.get("owner_user_id"),
            int(mailbox_row.get("leads_per_day") or 0),
        )


def eligible(rule: LeadRule, address: str, link: Link, *, auto_reply: bool) -> bool:
    """Whether the rule applies to this sender at all (pure)."""
    if auto_reply or link.contact_id or link.lead_id or link.account_id:
        return False
    local, _, domain = address.lower().partition("@")
    if not domain or local in SYSTEM_LOCAL_PARTS or local.startswith("noreply"):
        return False
    return domain != rule.mailbox_address.partition("@")[2]


def _names(display: str, address: str) -> tuple[str | None, str]:
    parts = display.replace('"', "").split()
    if len(parts) >= 2:
        return " ".join(parts[:-1])[:200], parts[-1][:200]
    if parts:
        return None, parts[0][:200]
    return None, address.split("@", 1)[0][:200]


async def lead_for_unknown_sender(
    conn: AsyncConnection[Any],
    rule: LeadRule,
    *,
    address: str,
    display_name: str,
    message_id: str,
) -> Link | None:
    """The sender's new (or just-made) lead, or None when the rule's limit is reached or
    the CRM refused it. Runs in the caller's transaction."""
    addr = address.strip().lower()
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('engage-lead:' || %s))", (addr,))
    cur = await conn.execute(
        "SELECT lead_id FROM engage_lead_origins WHERE address = %s"
        " UNION ALL SELECT id FROM leads WHERE lower(email) = %s AND status <> 'converted'"
        " LIMIT 1",
        (addr, addr),
    )
    got = await cur.fetchone()
    if got is not None:
        return Link(lead_id=int(got[0]))
    cur = await conn.execute(
        "SELECT count(*) FROM engage_lead_origins WHERE mailbox_id = %s"
        " AND created_at > now() - interval '24 hours'",
        (rule.mailbox_id,),
    )
    row = await cur.fetchone()
    if row is not None and int(row[0]) >= rule.per_day:
        log.info(
            "engage: mailbox %s made %s leads in 24 h (its limit); %s stays unlinked",
            rule.mailbox_id,
            row[0],
            addr,
        )
        return None
    first, last = _names(display_name, addr)
    domain = addr.split("@", 1)[1]
    values: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "email": addr,
        "company": None if domain in PUBLIC_DOMAINS else domain[:300],
        "source": "other",
        "status": "new",
    }
    if rule.owner_user_id is not None:
        values["owner_id"] = rule.owner_user_id
        cur = await conn.execute(
            "SELECT territory_id FROM users WHERE id = %s", (rule.owner_user_id,)
        )
        t = await cur.fetchone()
        if t is not None and t[0] is not None:
            values["territory_id"] = t[0]
    try:
        async with conn.transaction():
            lead = await create_record(conn, LEADS, engage_principal(), values)
    except ApiError as exc:
        log.warning("engage: CRM refused a lead for %s: %s", addr, exc.message)
        return None
    await conn.execute(
        "INSERT INTO engage_lead_origins (address, lead_id, mailbox_id, message_id)"
        " VALUES (%s, %s, %s, %s)",
        (addr, lead["id"], rule.mailbox_id, message_id[:300]),
    )
    return Link(lead_id=int(lead["id"]))
