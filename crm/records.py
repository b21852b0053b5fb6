"""Operations beyond CRUD: lead conversion, contact dedupe and merge, account hierarchy
roll-ups, account contact roles and the account timeline."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from crm.entities import ACCOUNTS, ACTIVITIES, CONTACT_ROLES, CONTACTS, LEADS, OPPORTUNITIES
from crm.errors import CrmError
from crm.filters import Sort
from crm.store import Page, Row, create_record, get_record, list_records, scope, set_actor
from kernel.principal import Principal

Conn = AsyncConnection[Any]

# Which lead field fills which field of the new records (recorded on the lead).
ACCOUNT_FROM_LEAD = {
    "name": "company",
    "address": "address",
    "location": "location",
    "currency": "currency",
    "territory_id": "territory_id",
}
CONTACT_FROM_LEAD = {
    "first_name": "first_name",
    "last_name": "last_name",
    "title": "title",
    "email": "email",
    "phone": "phone",
    "territory_id": "territory_id",
}
OPPORTUNITY_FROM_LEAD = {"amount": "estimated_amount", "currency": "currency"}


async def convert_lead(conn: Conn, principal: Principal, lead_id: int, options: Row) -> Row:
    """Lead -> account (new or existing) + contact + opportunity, in the caller's transaction."""
    import json

    lead = await get_record(conn, LEADS, principal, lead_id, for_update=True)
    principal.require_write()
    if lead["status"] == "converted":
        raise CrmError(f"lead {lead_id} is already converted", status=409, code="converted")
    mapping: dict[str, Any] = {"account": {}, "contact": {}, "opportunity": {}}
    owner = lead["owner_id"] or principal.user_id

    if options.get("account_id") is not None:
        account = await get_record(conn, ACCOUNTS, principal, options["account_id"])
        mapping["account"] = {"existing_account_id": account["id"]}
    else:
        values: Row = {"type": "prospect", "owner_id": owner}
        for target, source in ACCOUNT_FROM_LEAD.items():
            if lead.get(source) is not None:
                values[target] = json.dumps(lead[source]) if target == "location" else lead[source]
                mapping["account"][target] = f"lead.{source}"
        if "name" not in values:
            values["name"] = (
                " ".join(x for x in (lead["first_name"], lead["last_name"]) if x)
                or f"Lead {lead_id}"
            )
            mapping["account"]["name"] = "lead.first_name + lead.last_name"
        values.update(options.get("account") or {})
        account = await create_record(conn, ACCOUNTS, principal, values)

    cvalues: Row = {"owner_id": owner}
    for target, source in CONTACT_FROM_LEAD.items():
        if lead.get(source) is not None:
            cvalues[target] = lead[source]
            mapping["contact"][target] = f"lead.{source}"
    if not any(cvalues.get(k) for k in ("first_name", "last_name")):
        cvalues["company_name"] = lead["company"] or account["name"]
        cvalues["kind"] = "company"
        mapping["contact"]["company_name"] = "lead.company"
    cvalues.update(options.get("contact") or {})
    contact = await create_record(conn, CONTACTS, principal, cvalues)
    has_primary = await (
        await conn.execute(
            "SELECT 1 FROM account_contacts WHERE account_id = %s AND role = 'primary'",
            (account["id"],),
        )
    ).fetchone()
    await conn.execute(
        "INSERT INTO account_contacts (account_id, contact_id, role) VALUES (%s, %s, %s)",
        (account["id"], contact["id"], "secondary" if has_primary else "primary"),
    )

    opportunity = None
    if options.get("create_opportunity", True):
        ovalues: Row = {
            "name": f"{account['name']} — {lead['company'] or 'new business'}",
            "account_id": account["id"],
            "contact_id": contact["id"],
            "owner_id": owner,
        }
        for target, source in OPPORTUNITY_FROM_LEAD.items():
            if lead.get(source) is not None:
                ovalues[target] = lead[source]
                mapping["opportunity"][target] = f"lead.{source}"
        ovalues.update(options.get("opportunity") or {})
        opportunity = await create_record(conn, OPPORTUNITIES, principal, ovalues)
        await conn.execute(
            "UPDATE opportunities SET lead_id = %s WHERE id = %s", (lead_id, opportunity["id"])
        )

    await set_actor(conn, principal)
    await conn.execute(
        """
        UPDATE leads SET status = 'converted', converted_at = now(), converted_account_id = %s,
               converted_contact_id = %s, converted_opportunity_id = %s, conversion_mapping = %s::jsonb,
               updated_at = now(), version = version + 1
        WHERE id = %s
        """,
        (
            account["id"],
            contact["id"],
            opportunity["id"] if opportunity else None,
            json.dumps(mapping),
            lead_id,
        ),
    )
    # The lead's history follows it to the new records.
    await conn.execute(
        "UPDATE activities SET account_id = coalesce(account_id, %s), contact_id = coalesce(contact_id, %s), "
        "territory_id = coalesce(territory_id, %s) WHERE lead_id = %s",
        (account["id"], contact["id"], account["territory_id"], lead_id),
    )
    return {
        "lead": await get_record(conn, LEADS, principal, lead_id),
        "account": account,
        "contact": contact,
        "opportunity": opportunity,
        "mapping": mapping,
    }


# --------------------------------------------------------------------------- contacts


async def duplicate_groups(conn: Conn, principal: Principal, limit: int = 100) -> list[Row]:
    """Visible contacts sharing a normalised e-mail or phone, as groups of ids."""
    acc, acc_p = scope(CONTACTS, principal)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            """
            SELECT 'email' AS key, email_normalized AS value, array_agg(id ORDER BY id) AS contact_ids
            FROM contacts t WHERE email_normalized IS NOT NULL AND {acc}
            GROUP BY email_normalized HAVING count(*) > 1
            UNION ALL
            SELECT 'phone', phone_normalized, array_agg(id ORDER BY id)
            FROM contacts t WHERE phone_normalized IS NOT NULL AND {acc}
            GROUP BY phone_normalized HAVING count(*) > 1
            ORDER BY 1, 2 LIMIT %s
            """
        ).format(acc=acc),
        [*acc_p, *acc_p, limit],
    )
    return await cur.fetchall()


_MERGE_FILL = (
    "first_name",
    "last_name",
    "company_name",
    "title",
    "email",
    "phone",
    "phone_normalized",
    "address",
    "external_id",
)


async def merge_contacts(
    conn: Conn, principal: Principal, survivor_id: int, duplicate_ids: list[int]
) -> Row:
    """Fold duplicates into the survivor: empty fields filled, custom fields and
    communication preferences combined, account roles, activities and opportunities moved;
    the duplicates are deleted (the audit log keeps them)."""
    principal.require_write()
    if survivor_id in duplicate_ids or not duplicate_ids:
        raise CrmError(
            "merge_ids must be other contacts than the survivor", field="merge_ids", status=422
        )
    await set_actor(conn, principal)
    survivor = await get_record(conn, CONTACTS, principal, survivor_id, for_update=True)
    for dup_id in duplicate_ids:
        dup = await get_record(conn, CONTACTS, principal, dup_id, for_update=True)
        fill = {
            f: dup[f]
            for f in _MERGE_FILL
            if survivor.get(f) in (None, "") and dup.get(f) not in (None, "")
        }
        if dup["external_id"] and "external_id" in fill:
            await conn.execute("UPDATE contacts SET external_id = NULL WHERE id = %s", (dup_id,))
        sets = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fill]
        await conn.execute(
            sql.SQL(
                "UPDATE contacts SET {} custom = %s::jsonb || custom, comm_prefs = %s::jsonb || comm_prefs, "
                "updated_at = now(), version = version + 1 WHERE id = %s"
            ).format(sql.SQL("").join(s + sql.SQL(", ") for s in sets)),
            [*fill.values(), _json(dup["custom"]), _json(dup["comm_prefs"]), survivor_id],
        )
        await conn.execute(
            """
            INSERT INTO account_contacts (account_id, contact_id, role)
            SELECT account_id, %s, CASE WHEN role = 'primary' AND EXISTS (
                SELECT 1 FROM account_contacts x WHERE x.account_id = ac.account_id AND x.role = 'primary'
                  AND x.contact_id = %s) THEN 'secondary' ELSE role END
            FROM account_contacts ac WHERE contact_id = %s
            ON CONFLICT (account_id, contact_id) DO NOTHING
            """,
            (survivor_id, survivor_id, dup_id),
        )
        await conn.execute("DELETE FROM account_contacts WHERE contact_id = %s", (dup_id,))
        await conn.execute(
            "UPDATE activities SET contact_id = %s WHERE contact_id = %s", (survivor_id, dup_id)
        )
        await conn.execute(
            "UPDATE opportunities SET contact_id = %s WHERE contact_id = %s", (survivor_id, dup_id)
        )
        await conn.execute(
            "UPDATE leads SET converted_contact_id = %s WHERE converted_contact_id = %s",
            (survivor_id, dup_id),
        )
        await conn.execute(
            "UPDATE contacts SET merged_into_id = %s WHERE merged_into_id = %s",
            (survivor_id, dup_id),
        )
        await conn.execute("DELETE FROM contacts WHERE id = %s", (dup_id,))
        survivor = await get_record(conn, CONTACTS, principal, survivor_id, for_update=True)
    return survivor


def _json(value: Any) -> str:
    import json

    return json.dumps(value or {})


# --------------------------------------------------------------------------- accounts


async def set_account_contact(
    conn: Conn, principal: Principal, account_id: int, contact_id: int, role: str
) -> Row:
    principal.require_write()
    if role not in CONTACT_ROLES:
        raise CrmError(f"role must be one of {', '.join(CONTACT_ROLES)}", field="role", status=422)
    await get_record(conn, ACCOUNTS, principal, account_id, for_update=True)
    try:
        await get_record(conn, CONTACTS, principal, contact_id)
    except CrmError:
        raise
    except Exception as exc:  # NotFound of the contact is a bad field of this request
        raise CrmError(
            f"contact_id: contact {contact_id} not found", field="contact_id", status=422
        ) from exc
    if role == "primary":  # one primary per account: the previous one becomes secondary
        await conn.execute(
            "UPDATE account_contacts SET role = 'secondary' WHERE account_id = %s AND role = 'primary' AND contact_id <> %s",
            (account_id, contact_id),
        )
    await conn.execute(
        "INSERT INTO account_contacts (account_id, contact_id, role) VALUES (%s, %s, %s) "
        "ON CONFLICT (account_id, contact_id) DO UPDATE SET role = EXCLUDED.role",
        (account_id, contact_id, role),
    )
    return {"account_id": account_id, "contact_id": contact_id, "role": role}


async def account_contacts(conn: Conn, principal: Principal, account_id: int) -> list[Row]:
    await get_record(conn, ACCOUNTS, principal, account_id)
    acc, acc_p = scope(CONTACTS, principal, "c")
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            "SELECT ac.contact_id, ac.role, c.first_name, c.last_name, c.company_name, c.email, c.phone "
            "FROM account_contacts ac JOIN contacts c ON c.id = ac.contact_id "
            "WHERE ac.account_id = %s AND {} ORDER BY (ac.role = 'primary') DESC, ac.contact_id"
        ).format(acc),
        [account_id, *acc_p],
    )
    return await cur.fetchall()


async def remove_account_contact(
    conn: Conn, principal: Principal, account_id: int, contact_id: int
) -> None:
    principal.require_write()
    await get_record(conn, ACCOUNTS, principal, account_id, for_update=True)
    cur = await conn.execute(
        "DELETE FROM account_contacts WHERE account_id = %s AND contact_id = %s",
        (account_id, contact_id),
    )
    if cur.rowcount == 0:
        raise CrmError(
            f"contact {contact_id} is not linked to account {account_id}",
            status=404,
            code="not_found",
        )


async def rollup(conn: Conn, principal: Principal, account_id: int) -> Row:
    """Revenue and open opportunities summed over the account and all its descendants
    (only the accounts and opportunities the principal may see)."""
    await get_record(conn, ACCOUNTS, principal, account_id)
    acc, acc_p = scope(ACCOUNTS, principal, "a")
    opp, opp_p = scope(OPPORTUNITIES, principal, "o")
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            """
            WITH RECURSIVE tree(id, depth) AS (
                SELECT id, 0 FROM accounts WHERE id = %s
                UNION ALL
                SELECT a.id, tree.depth + 1 FROM accounts a JOIN tree ON a.parent_id = tree.id
                WHERE tree.depth < 100
            ), visible AS (
                SELECT a.* FROM accounts a JOIN tree USING (id) WHERE {acc}
            )
            SELECT %s::bigint AS account_id,
                   (SELECT count(*) FROM visible) AS accounts,
                   (SELECT max(depth) FROM tree) AS depth,
                   (SELECT coalesce(sum(annual_revenue), 0) FROM visible) AS annual_revenue,
                   (SELECT count(*) FROM opportunities o JOIN visible v ON v.id = o.account_id
                     WHERE o.status = 'open' AND {opp}) AS open_opportunities,
                   (SELECT coalesce(sum(o.amount), 0) FROM opportunities o JOIN visible v ON v.id = o.account_id
                     WHERE o.status = 'open' AND {opp}) AS open_amount,
                   -- the same figures per currency: amounts in EUR and USD are never one sum
                   (SELECT coalesce(jsonb_agg(jsonb_build_object('currency', c, 'amount', n) ORDER BY c), '[]')
                    FROM (SELECT v.currency AS c, sum(v.annual_revenue) AS n FROM visible v
                          WHERE v.annual_revenue IS NOT NULL GROUP BY v.currency) r) AS annual_revenue_by_currency,
                   (SELECT coalesce(jsonb_agg(jsonb_build_object('currency', c, 'amount', n) ORDER BY c), '[]')
                    FROM (SELECT o.currency AS c, sum(o.amount) AS n
                          FROM opportunities o JOIN visible v ON v.id = o.account_id
                          WHERE o.status = 'open' AND o.amount IS NOT NULL AND {opp}
                          GROUP BY o.currency) x) AS open_amount_by_currency
            """
        ).format(acc=acc, opp=opp),
        [account_id, *acc_p, account_id, *opp_p, *opp_p, *opp_p],
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def timeline(
    conn: Conn,
    principal: Principal,
    account_id: int,
    cursor: str | None,
    limit: int,
    *,
    account_checked: bool = False,
) -> Page:
    """All visible activities of the account, newest first (by occurred_at, then id).
    404 unless the principal may see the account; a caller that has just checked that
    (an endpoint's scope) says so with `account_checked`, saving a query."""
    if not account_checked:
        await get_record(conn, ACCOUNTS, principal, account_id)
    occurred = ACTIVITIES.field("occurred_at")
    assert occurred is not None
    return await list_records(
        conn,
        ACTIVITIES,
        principal,
        sort=Sort(occurred, True),
        cursor=cursor,
        limit=limit,
        extra=(sql.SQL("t.account_id = %s"), [account_id]),
    )
