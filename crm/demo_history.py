"""Twelve months of CRM history for the demo world's accounts, and up to three years of
their repeat orders.

`make demo` must open on a CRM that looks lived in: every account has contacts, the
pipeline has deals in every stage that moved through the stages over the last year (some
won, some lost, with their stage history), leads arrive from every source and are worked
to every status, and the timeline holds the calls, e-mails, meetings and tasks that
produced them. Amounts, cycle times and win rates follow a field-service business
(service contracts and equipment upgrades in euros, quarter-end peaks, 60-120 day
cycles), so the analytics pages and the intelligence models have something real to read.

Deterministic for a (tenant, seed); idempotent: rows carry `external_id`s (or
`source_ref`s) under `<tenant>:demo:`, so a second run changes nothing. Written through
plain INSERTs in one transaction; the audit log records them as changes without an
actor, as for any system import.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from crm.seed import FIRST, LAST

CURRENCY = "EUR"
LEAD_SOURCES = ("website", "referral", "cold_call", "social_media", "event", "partner")
# Of every 100 leads of a source, about this many end converted (the rest spread over the
# other statuses): referrals and partners convert best, cold calls worst.
SOURCE_CONVERSION = {
    "website": 14,
    "referral": 32,
    "cold_call": 6,
    "social_media": 9,
    "event": 18,
    "partner": 27,
}
DEAL_KINDS = (
    ("Service contract renewal", 4_000, 18_000),
    ("Preventive maintenance plan", 2_500, 9_000),
    ("Pump upgrade", 12_000, 45_000),
    ("Compressor replacement", 20_000, 80_000),
    ("Chiller retrofit", 35_000, 140_000),
    ("Spare parts framework", 3_000, 15_000),
)
# the repeat business of a customer: small orders closed within weeks
ORDER_KINDS = (
    ("Spare parts order", 800, 6_000),
    ("Maintenance visit package", 1_500, 8_000),
    ("Service contract renewal", 4_000, 18_000),
)
TITLES = ("Facility manager", "Plant engineer", "Purchasing lead", "Operations director", "CFO")
ACTIVITY_SUBJECTS = {
    "call": ("Check-in call", "Follow-up on quote", "Budget discussion", "Service feedback"),
    "email": ("Quote sent", "Maintenance report", "Contract draft", "Meeting summary"),
    "meeting": (
        "Site walkthrough",
        "Quarterly review",
        "Technical workshop",
        "Contract negotiation",
    ),
    "task": ("Prepare quote", "Order spare parts", "Update asset list", "Schedule inspection"),
}


@dataclass(frozen=True, slots=True)
class HistoryCounts:
    contacts: int
    leads: int
    opportunities: int
    activities: int
    created: bool  # False when the history was already there


def _stages(conn: psycopg.Connection[Any]) -> tuple[int, list[tuple[int, float, bool, bool]]]:
    row = conn.execute("SELECT id FROM pipelines WHERE is_default ORDER BY id LIMIT 1").fetchone()
    if row is None:
        raise ValueError("no default pipeline: run the migrations first")
    stages = conn.execute(
        "SELECT id, probability, is_won, is_lost FROM pipeline_stages WHERE pipeline_id = %s"
        " ORDER BY position",
        (row[0],),
    ).fetchall()
    return int(row[0]), [(int(s[0]), float(s[1]), bool(s[2]), bool(s[3])) for s in stages]


def _season(day: dt.date) -> float:
    """Relative deal volume: budgets are spent at quarter ends, August is quiet."""
    quarter_end = day.month in (3, 6, 9, 12)
    return (1.35 if quarter_end else 1.0) * (0.6 if day.month == 8 else 1.0)


def seed_history(
    conn: psycopg.Connection[Any],
    *,
    tenant: str,
    accounts: Sequence[tuple[int, int | None, int]],  # (account id, owner id or None, territory id)
    owners: Sequence[int],
    now: dt.datetime,
    rng_seed: int = 11,
) -> HistoryCounts:
    """Create the history once (committing), or report that it is there."""
    if not accounts or not owners:
        raise ValueError("the demo history needs accounts and at least one owner")
    prefix = f"{tenant}:demo:"
    done = conn.execute(
        "SELECT count(*) FROM contacts WHERE external_id LIKE %s", (prefix + "%",)
    ).fetchone()
    if done and done[0]:
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM contacts WHERE external_id LIKE %(p)s),
                      (SELECT count(*) FROM leads WHERE external_id LIKE %(p)s),
                      (SELECT count(*) FROM opportunities o JOIN contacts c ON c.id = o.contact_id
                        WHERE c.external_id LIKE %(p)s),
                      (SELECT count(*) FROM activities WHERE source_ref LIKE %(p)s)""",
            {"p": prefix + "%"},
        ).fetchone()
        assert counts is not None
        return HistoryCounts(int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3]), False)

    rng = random.Random(f"{tenant}:{rng_seed}")
    pipeline_id, stages = _stages(conn)
    open_stages = [s for s in stages if not s[2] and not s[3]]
    won = next(s for s in stages if s[2])
    lost = next(s for s in stages if s[3])
    today = now.date()
    start = today - dt.timedelta(days=365)
    n_contacts = n_leads = n_opps = n_acts = 0

    def owner_of(acc_owner: int | None) -> int:
        return acc_owner if acc_owner is not None else rng.choice(owners)

    def at(day: dt.date, hour_lo: int = 8, hour_hi: int = 17) -> dt.datetime:
        return dt.datetime.combine(
            day, dt.time(rng.randint(hour_lo, hour_hi - 1), rng.choice((0, 15, 30, 45))), dt.UTC
        )

    def activity(
        kind: str,
        when: dt.datetime,
        account_id: int,
        owner: int,
        territory: int,
        key: str,
        **refs: Any,
    ) -> None:
        nonlocal n_acts
        status = "done" if when < now else "open"
        conn.execute(
            """INSERT INTO activities (type, subject, status, due_at, start_at, end_at, account_id,
                   contact_id, opportunity_id, lead_id, owner_id, territory_id, source, source_ref,
                   completed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'demo', %s, %s)""",
            (
                kind,
                rng.choice(ACTIVITY_SUBJECTS[kind]),
                status,
                when if kind == "task" else None,
                when if kind != "task" else None,
                when + dt.timedelta(minutes=rng.choice((15, 30, 60)))
                if kind in ("call", "meeting")
                else None,
                account_id,
                refs.get("contact_id"),
                refs.get("opportunity_id"),
                refs.get("lead_id"),
                owner,
                territory,
                prefix + key,
                when if status == "done" else None,
            ),
        )
        n_acts += 1

    # contacts: 2-4 per account, one of them the primary
    contacts_of: dict[int, list[int]] = {}
    for account_id, acc_owner, territory in accounts:
        ids = []
        for k in range(rng.randint(2, 4)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            row = conn.execute(
                """INSERT INTO contacts (first_name, last_name, title, email, phone, owner_id,
                       territory_id, external_id, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    first,
                    last,
                    rng.choice(TITLES),
                    f"{first}.{last}.{account_id}.{k}@customer.example".lower(),
                    f"+49 30 {rng.randint(1000000, 9999999)}",
                    owner_of(acc_owner),
                    territory,
                    f"{prefix}contact:{account_id}:{k}",
                    dt.datetime.combine(start, dt.time(9), dt.UTC)
                    + dt.timedelta(days=rng.randint(0, 60)),
                ),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
            conn.execute(
                "INSERT INTO account_contacts (account_id, contact_id, role)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    account_id,
                    row[0],
                    ("decision_maker", "primary")[min(k, 1)] if k < 2 else "secondary",
                ),
            )
            n_contacts += 1
        contacts_of[account_id] = ids

    # opportunities: created over the year, moved through the stages; old ones closed
    for account_id, acc_owner, territory in accounts:
        for _ in range(rng.randint(1, 3)):
            created = start + dt.timedelta(days=rng.randint(0, 350))
            while rng.random() > _season(created) / 1.35:  # thin out the quiet months
                created = start + dt.timedelta(days=rng.randint(0, 350))
            name, lo, hi = rng.choice(DEAL_KINDS)
            amount = round(rng.uniform(lo, hi), -2)
            owner = owner_of(acc_owner)
            cycle_days = rng.randint(45, 130)
            close = created + dt.timedelta(days=cycle_days)
            # walk the open stages at a steady pace; deals past their close date are decided
            path = [open_stages[0]]
            day = created
            step_days = max(7, cycle_days // (len(open_stages) + 1))
            for stage in open_stages[1:]:
                if day + dt.timedelta(days=step_days) >= today or rng.random() < 0.18:
                    break
                day += dt.timedelta(days=step_days)
                path.append(stage)
            closed_at: dt.datetime | None = None
            status = "open"
            if close < today:
                decided = won if rng.random() < 0.25 + 0.1 * len(path) else lost
                path.append(decided)
                status = "won" if decided is won else "lost"
                closed_at = at(min(close, today - dt.timedelta(days=1)))
            final = path[-1]
            contact_id = contacts_of[account_id][0]
            row = conn.execute(
                """INSERT INTO opportunities (name, account_id, contact_id, pipeline_id, stage_id,
                       amount, currency, close_date, probability, status, owner_id, territory_id,
                       closed_at, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING id""",
                (
                    name,
                    account_id,
                    contact_id,
                    pipeline_id,
                    final[0],
                    amount,
                    CURRENCY,
                    close,
                    final[1],
                    status,
                    owner,
                    territory,
                    closed_at,
                    at(created),
                ),
            ).fetchone()
            assert row is not None
            opp_id = int(row[0])
            prev: int | None = None
            when = created
            for k, stage in enumerate(path):
                if k:
                    when = (
                        closed_at.date()
                        if closed_at is not None and k == len(path) - 1
                        else min(created + dt.timedelta(days=step_days * k), today)
                    )
                conn.execute(
                    "INSERT INTO opportunity_stage_history (opportunity_id, from_stage_id,"
                    " to_stage_id, amount, changed_by, changed_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (opp_id, prev, stage[0], amount, owner, at(when)),
                )
                # each step came with a touch on the timeline
                kind = ("call", "email", "meeting", "meeting")[min(k, 3)]
                activity(
                    kind,
                    at(when),
                    account_id,
                    owner,
                    territory,
                    f"opportunity:{opp_id}:{k}",
                    contact_id=contact_id,
                    opportunity_id=opp_id,
                )
                prev = stage[0]
            n_opps += 1
            if status == "open":  # an open deal has a next step planned
                nxt = today + dt.timedelta(days=rng.randint(1, 14))
                activity(
                    "task",
                    at(nxt),
                    account_id,
                    owner,
                    territory,
                    f"opportunity:{opp_id}:next",
                    contact_id=contact_id,
                    opportunity_id=opp_id,
                )

    # customers: repeat orders (spare parts, maintenance packages, renewals) since the
    # account became a customer up to three years ago, engaged accounts more often; a
    # customer may lapse (a monthly hazard, six times higher for quiet accounts), and then
    # its orders stop, its renewal is lost and the touches thin out. This is what the
    # churn, lifetime-value and segment models learn from.
    lapsed_on: dict[int, dt.date | None] = {}
    engaged_of: dict[int, bool] = {}
    for account_id, acc_owner, territory in accounts:
        engaged = rng.random() < 0.55
        since = today - dt.timedelta(days=rng.randint(10, 1000))
        lapse: dt.date | None = None
        day = since + dt.timedelta(days=30)
        while day < today:
            if rng.random() < (0.012 if engaged else 0.07):
                lapse = day
                break
            day += dt.timedelta(days=30)
        engaged_of[account_id], lapsed_on[account_id] = engaged, lapse
        owner = owner_of(acc_owner)
        contact_id = contacts_of[account_id][0]
        orders: list[tuple[dt.date, bool]] = []
        day = since
        while day < (lapse or today):
            orders.append((day, not orders or rng.random() < 0.88))
            day += dt.timedelta(days=rng.randint(50, 120) if engaged else rng.randint(110, 260))
        if lapse is not None and lapse + dt.timedelta(days=20) < today:
            orders.append((lapse + dt.timedelta(days=rng.randint(20, 60)), False))
        for k, (closed, won_it) in enumerate(orders):
            closed = min(closed, today - dt.timedelta(days=1))
            name, lo, hi = rng.choice(ORDER_KINDS)
            amount = round(rng.uniform(lo, hi), -2)
            created = closed - dt.timedelta(days=rng.randint(7, 30))
            decided = won if won_it else lost
            row = conn.execute(
                """INSERT INTO opportunities (name, account_id, contact_id, pipeline_id, stage_id,
                       amount, currency, close_date, probability, status, owner_id, territory_id,
                       closed_at, created_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING id""",
                (name, account_id, contact_id, pipeline_id, decided[0], amount, CURRENCY,
                 closed, decided[1], "won" if won_it else "lost", owner, territory,
                 at(closed), at(created)),
            ).fetchone()  # fmt: skip
            assert row is not None
            for stage, when, prev in (
                (open_stages[0], created, None),
                (decided, closed, open_stages[0][0]),
            ):
                conn.execute(
                    "INSERT INTO opportunity_stage_history (opportunity_id, from_stage_id,"
                    " to_stage_id, amount, changed_by, changed_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (row[0], prev, stage[0], amount, owner, at(when)),
                )
            activity(
                "email", at(closed), account_id, owner, territory, f"order:{account_id}:{k}",
                contact_id=contact_id, opportunity_id=int(row[0]),
            )  # fmt: skip
            n_opps += 1

    # leads: a steady inflow from every source, worked to a status matching their age
    territory_ids = sorted({t for _, _, t in accounts})
    for i in range(max(12, len(accounts) * 3)):
        source = LEAD_SOURCES[i % len(LEAD_SOURCES)]
        created = start + dt.timedelta(days=rng.randint(0, 364))
        age = (today - created).days
        roll = rng.randint(1, 100)
        if age < 7:
            status = "new"
        elif roll <= SOURCE_CONVERSION[source] and age > 30:
            status = "qualified"  # converted by the CRM's own conversion, not by hand
        elif roll <= 55:
            status = "unqualified" if age > 45 else "contacted"
        else:
            status = "contacted"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        owner = rng.choice(owners)
        territory = rng.choice(territory_ids)
        row = conn.execute(
            """INSERT INTO leads (first_name, last_name, company, email, source, status,
                   estimated_amount, currency, owner_id, territory_id, external_id, created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                first,
                last,
                f"{last} {rng.choice(('Logistics', 'Foods', 'Chemicals', 'Hospital', 'Hotel', 'Plastics'))}",
                f"{first}.{last}.lead{i}@prospect.example".lower(),
                source,
                status,
                round(rng.uniform(3_000, 60_000), -2),
                CURRENCY,
                owner,
                territory,
                f"{prefix}lead:{i}",
                at(created),
            ),
        ).fetchone()
        assert row is not None
        n_leads += 1
        if status != "new":
            acct = rng.choice(accounts)[0]  # the timeline needs an account; leads have none
            activity(
                "call",
                at(created + dt.timedelta(days=rng.randint(1, 5))),
                acct,
                owner,
                territory,
                f"lead:{row[0]}",
                lead_id=int(row[0]),
            )

    # the day-to-day: a visit report or a call on each account every few weeks, less
    # often on quiet accounts and on lapsed ones
    for account_id, acc_owner, territory in accounts:
        day = start + dt.timedelta(days=rng.randint(0, 20))
        k = 0
        while day < today + dt.timedelta(days=14):
            lapsed = lapsed_on[account_id]
            gone = lapsed is not None and day > lapsed
            kind = rng.choice(("call", "email", "meeting", "task"))
            activity(
                kind,
                at(day),
                account_id,
                owner_of(acc_owner),
                territory,
                f"touch:{account_id}:{k}",
                contact_id=rng.choice(contacts_of[account_id]),
            )
            day += dt.timedelta(
                days=rng.randint(60, 150)
                if gone
                else rng.randint(18, 40)
                if engaged_of[account_id]
                else rng.randint(45, 100)
            )
            k += 1
    conn.commit()
    return HistoryCounts(n_contacts, n_leads, n_opps, n_acts, created=True)
