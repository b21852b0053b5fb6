"""The CRM side of messages: who an address is, merge values, and e-mail activities.

Linking an address: a contact whose e-mail is that address (merged contacts followed to
the survivor), else a lead with it; the account is the contact's primary (or first)
account, else the account one of whose contacts shares the address's domain (public
webmail domains never link by domain). Activities are written through the CRM's own
service (`crm.store.create_record`, as engage's system actor), so the CRM's rules (the
territory from the account, the audit trail) apply; `source = 'engage'` and the
Message-ID as `source_ref` make logging the same message twice impossible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.entities import ACTIVITIES, CONTACTS
from crm.store import create_record, get_record
from kernel.errors import ApiError
from kernel.principal import Principal

log = logging.getLogger(__name__)

ENGAGE_ACTOR_ID = 0  # the audit trail's actor for what engage writes by itself
PUBLIC_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "proton.me",
        "protonmail.com",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
    }
)


def engage_principal() -> Principal:
    return Principal(
        user_id=ENGAGE_ACTOR_ID,
        email="system:engage",
        role="admin",
        territory_id=None,
        team_user_ids=(),
        team_territory_ids=(),
    )


@dataclass(frozen=True, slots=True)
class Link:
    contact_id: int | None = None
    lead_id: int | None = None
    account_id: int | None = None


def _name(row: dict[str, Any]) -> str:
    parts = [row.get("first_name"), row.get("last_name")]
    return " ".join(p for p in parts if p) or str(row.get("company_name") or "")


async def contact_merge_values(conn: AsyncConnection[Any], contact_id: int) -> dict[str, Any]:
    c = await get_record(conn, CONTACTS, engage_principal(), contact_id)
    contact = {
        "id": c["id"],
        "first_name": c.get("first_name") or "",
        "last_name": c.get("last_name") or "",
        "name": _name(c),
        "email": c.get("email"),
        "phone": c.get("phone"),
        "title": c.get("title") or "",
    }
    account = await _account_of(conn, contact_id)
    return {"contact": contact, "account": account or {}}


async def _account_of(conn: AsyncConnection[Any], contact_id: int) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT a.id, a.name FROM account_contacts ac JOIN accounts a ON a.id = ac.account_id"
        " WHERE ac.contact_id = %s ORDER BY (ac.role = 'primary') DESC, a.id LIMIT 1",
        (contact_id,),
    )
    return await cur.fetchone()


async def link_addresses(conn: AsyncConnection[Any], addresses: list[str]) -> dict[str, Link]:
    """Each lower-cased address to its contact / lead / account (one query per kind); an
    address nothing links to maps to an empty Link, so a batch's lookups are all answered."""
    addrs = sorted({a.strip().lower() for a in addresses if a and "@" in a})
    out: dict[str, Link] = {}
    if not addrs:
        return out
    cur = await conn.execute(
        "SELECT DISTINCT ON (c.email_normalized) c.email_normalized,"
        " coalesce(c.merged_into_id, c.id),"
        " (SELECT ac.account_id FROM account_contacts ac WHERE ac.contact_id ="
        "  coalesce(c.merged_into_id, c.id) ORDER BY (ac.role = 'primary') DESC, ac.account_id LIMIT 1)"
        " FROM contacts c WHERE c.email_normalized = ANY(%s)"
        " ORDER BY c.email_normalized, (c.merged_into_id IS NULL) DESC, c.id",
        (addrs,),
    )
    for addr, cid, aid in await cur.fetchall():
        out[addr] = Link(contact_id=int(cid), account_id=aid)
    rest = [a for a in addrs if a not in out]
    if rest:
        cur = await conn.execute(
            "SELECT DISTINCT ON (lower(email)) lower(email), id FROM leads"
            " WHERE lower(email) = ANY(%s) AND status <> 'converted' ORDER BY lower(email), id",
            (rest,),
        )
        for addr, lid in await cur.fetchall():
            out[addr] = Link(lead_id=int(lid))
    rest = [a for a in addrs if a not in out]
    domains = sorted({a.split("@", 1)[1] for a in rest} - PUBLIC_DOMAINS)
    if domains:
        cur = await conn.execute(
            "SELECT DISTINCT ON (split_part(c.email_normalized, '@', 2))"
            " split_part(c.email_normalized, '@', 2), ac.account_id"
            " FROM contacts c JOIN account_contacts ac ON ac.contact_id = c.id"
            " WHERE split_part(c.email_normalized, '@', 2) = ANY(%s)"
            " ORDER BY split_part(c.email_normalized, '@', 2), ac.account_id",
            (domains,),
        )
        by_domain = {d: int(a) for d, a in await cur.fetchall()}
        for a in rest:
            aid = by_domain.get(a.split("@", 1)[1])
            if aid is not None:
                out[a] = Link(account_id=aid)
    for a in addrs:
        out.setdefault(a, Link())
    return out


async def log_email_activity(
    conn: AsyncConnection[Any],
    *,
    link: Link,
    subject: str,
    body: str,
    message_id: str,
    occurred_at: datetime | None,
    direction: str,
    owner_id: int | None = None,
) -> int | None:
    """An `email` activity on the CRM timeline (done); None when nothing links it or it is
    already logged. A savepoint keeps a CRM refusal from breaking the caller's batch."""
    if link.contact_id is None and link.lead_id is None and link.account_id is None:
        return None
    cur = await conn.execute(
        "SELECT id FROM activities WHERE source = 'engage' AND source_ref = %s", (message_id[:200],)
    )
    got = await cur.fetchone()
    if got is not None:
        return int(got[0])
    values: dict[str, Any] = {
        "type": "email",
        "subject": (subject or "(no subject)")[:500],
        "body": f"[{direction}] {body}"[:100_000],
        "status": "done",
        "contact_id": link.contact_id,
        "lead_id": link.lead_id,
        "account_id": link.account_id,
        "source": "engage",
        "source_ref": message_id[:200],
        "start_at": occurred_at,
        "owner_id": owner_id,
    }
    try:
        async with conn.transaction():
            row = await create_record(conn, ACTIVITIES, engage_principal(), values)
    except ApiError as exc:
        log.warning("engage: CRM refused the activity for %s: %s", message_id, exc.message)
        return None
    return int(row["id"])


async def log_outbound_emails(conn: AsyncConnection[Any], rows: list[dict[str, Any]]) -> None:
    """Sent e-mails onto their conversation and the CRM timeline (in the caller's
    transaction that marks them sent)."""
    from engage import conversations

    links = await link_addresses(conn, [r["to_address"] for r in rows])
    # a batch often holds several messages to one person with one subject (a campaign):
    # their conversation is looked up once
    convs: dict[tuple[Any, ...], int] = {}
    for r in rows:
        link = links.get(r["to_address"], Link())
        if r["contact_id"] is not None:
            link = Link(contact_id=r["contact_id"], account_id=link.account_id)
        text = _text_part(bytes(r["raw"]))
        key = (link.contact_id, link.lead_id, r["to_address"], r["subject"])
        conv = r.get("conversation_id") or convs.get(key)
        if conv is None:
            conv = convs[key] = await conversations.conversation_for(
                conn,
                link=link,
                channel="email",
                subject=r["subject"],
                refs=[],
                address=r["to_address"],
            )
        activity = await log_email_activity(
            conn,
            link=link,
            subject=r["subject"],
            body=text,
            message_id=r["message_id"],
            occurred_at=None,
            direction="sent",
        )
        await conversations.add_message(
            conn,
            conversation_id=conv,
            channel="email",
            direction="out",
            contact_id=link.contact_id,
            from_addr=r["sender_address"],
            to_addr=r["to_address"],
            subject=r["subject"],
            body_text=text,
            external_id=r["message_id"],
            outbox_id=r["id"],
            activity_id=activity,
        )


def _text_part(raw: bytes) -> str:
    from engage.parse import text_of

    return text_of(raw)[:20_000]
