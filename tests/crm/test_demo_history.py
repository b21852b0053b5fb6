"""The demo world's CRM history: every stage, source and status; written once."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from crm.demo_history import LEAD_SOURCES, seed_history

pytestmark = pytest.mark.integration


def test_a_year_of_history_once(db: psycopg.Connection) -> None:
    tenant = f"h{uuid.uuid4().hex[:8]}"
    row = db.execute(
        "INSERT INTO territories (name, region) VALUES (%s, 'demo') RETURNING id", (tenant,)
    ).fetchone()
    assert row is not None
    territory = int(row[0])
    owners = []
    for k in range(2):
        r = db.execute(
            "INSERT INTO users (email, name, role, territory_id) VALUES (%s, %s, 'rep', %s) RETURNING id",
            (f"{tenant}{k}@demo.test", f"Rep {k}", territory),
        ).fetchone()
        assert r is not None
        owners.append(int(r[0]))
    accounts = []
    for i in range(20):
        r = db.execute(
            "INSERT INTO accounts (name, type, territory_id, owner_id) VALUES (%s, 'customer', %s, %s) RETURNING id",
            (f"{tenant} account {i}", territory, owners[i % 2]),
        ).fetchone()
        assert r is not None
        accounts.append((int(r[0]), owners[i % 2], territory))
    db.commit()
    now = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)

    counts = seed_history(db, tenant=tenant, accounts=accounts, owners=owners, now=now)
    assert counts.created and counts.contacts >= 40 and counts.opportunities >= 20
    ids = [a[0] for a in accounts]
    statuses: dict[str, int] = dict(
        db.execute(
            "SELECT status, count(*) FROM opportunities WHERE account_id = ANY(%s) GROUP BY status",
            (ids,),
        ).fetchall()
    )
    assert (
        statuses.get("won", 0) > 0 and statuses.get("lost", 0) > 0 and statuses.get("open", 0) > 0
    )
    span = db.execute(
        "SELECT min(created_at), max(created_at), count(DISTINCT currency) FROM opportunities"
        " WHERE account_id = ANY(%s)",
        (ids,),
    ).fetchone()
    # a year of pipeline, and the customers' repeat orders back to three years
    assert span is not None and span[0] >= now - dt.timedelta(days=1100) and span[2] == 1
    assert (span[1] - span[0]).days > 180  # spread over the year, not one day
    # no seeding key among the custom fields a user reads on every deal
    keyed = db.execute(
        "SELECT count(*) FROM opportunities WHERE account_id = ANY(%s) AND custom <> '{}'",
        (ids,),
    ).fetchone()
    assert keyed == (0,)
    # every deal's stage history starts at the first stage and ends at its current stage
    bad = db.execute(
        """SELECT o.id FROM opportunities o
           WHERE o.account_id = ANY(%s) AND o.stage_id IS DISTINCT FROM (
               SELECT h.to_stage_id FROM opportunity_stage_history h
               WHERE h.opportunity_id = o.id ORDER BY h.changed_at DESC, h.id DESC LIMIT 1)""",
        (ids,),
    ).fetchall()
    assert bad == []
    sources = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT source FROM leads WHERE external_id LIKE %s", (f"{tenant}:demo:%",)
        )
    }
    assert sources == set(LEAD_SOURCES)
    acts = db.execute(
        "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'open'),"
        " count(DISTINCT type) FROM activities WHERE account_id = ANY(%s)",
        (ids,),
    ).fetchone()
    assert acts is not None and acts[0] > 50 and acts[1] > 0 and acts[2] >= 4

    again = seed_history(db, tenant=tenant, accounts=accounts, owners=owners, now=now)
    assert not again.created
    assert (again.contacts, again.leads, again.opportunities, again.activities) == (
        counts.contacts,
        counts.leads,
        counts.opportunities,
        counts.activities,
    )
