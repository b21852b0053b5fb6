"""A generator of realistic CRM data, loaded with COPY (benchmarks, demos, manual testing).

Territories each get a manager and reps; accounts are spread over the territories and owned
by their reps; contacts and activities belong to accounts (same territory and owner).
Deterministic for a given seed. Triggers (audit, defaults) are disabled during the load:
a seed is not a user's change.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

Progress = Callable[[str, int, int], None]  # (table, rows done in this step, total rows)

FIRST = (
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Yusuf",
    "Zoe",
)
LAST = (
    "Smith",
    "Müller",
    "García",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Jensen",
    "Silva",
    "Novak",
    "Tanaka",
    "Okafor",
    "Larsen",
    "Moreau",
    "Fischer",
    "Costa",
    "Nagy",
    "Horvat",
    "Berg",
    "Keller",
    "Weber",
)
COMPANY_A = (
    "North",
    "Blue",
    "Iron",
    "Green",
    "Swift",
    "Alpine",
    "Delta",
    "Coastal",
    "Prime",
    "Urban",
)
COMPANY_B = (
    "Dairy",
    "Foods",
    "Logistics",
    "Pharma",
    "Steel",
    "Bakery",
    "Hotels",
    "Clinic",
    "Farms",
    "Motors",
)
ACCOUNT_TYPES = ("customer",) * 6 + ("prospect",) * 3 + ("partner",)
ACTIVITY_TYPES = ("call", "email", "meeting", "task", "note")
BATCH = 20_000


@dataclass(frozen=True, slots=True)
class SeedCounts:
    accounts: int
    contacts: int
    activities: int
    territories: int = 20
    reps_per_territory: int = 3
    opportunities: int = 0  # default: accounts // 4


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: tuple[str, ...],
    total: int,
    row: Callable[[int], str],
    progress: Progress | None,
) -> None:
    stmt = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    done = 0
    with conn.cursor().copy(stmt) as copy:
        while done < total:
            n = min(BATCH, total - done)
            buf = io.StringIO()
            for i in range(done, done + n):
                buf.write(row(i))
            copy.write(buf.getvalue().encode())
            done += n
            if progress:
                progress(table, n, total)


def seed(
    dsn: str, counts: SeedCounts, *, rng_seed: int = 7, progress: Progress | None = None
) -> dict[str, int]:
    """Load the data set into an empty CRM schema; returns the number of rows per table."""
    rng = random.Random(rng_seed)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT EXISTS (SELECT 1 FROM accounts)").fetchone() == (True,):
            raise ValueError("the database already has accounts: seed an empty one")
        for table in (
            "accounts",
            "contacts",
            "activities",
            "opportunities",
            "users",
            "territories",
        ):
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        # territories, managers and reps
        territory_ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO territories (name, region) SELECT 'Territory ' || g, 'Region ' || (g %% 4) "
                "FROM generate_series(1, %s) g RETURNING id",
                (counts.territories,),
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO users (email, name, role) VALUES ('admin@seed.fieldmesh.test', 'Seed Admin', 'admin')"
        )
        reps: dict[int, list[int]] = {}
        for t in territory_ids:
            mgr = conn.execute(
                "INSERT INTO users (email, name, role, territory_id) VALUES (%s, %s, 'manager', %s) RETURNING id",
                (f"manager{t}@seed.fieldmesh.test", f"Manager {t}", t),
            ).fetchone()
            assert mgr is not None
            reps[t] = []
            for k in range(counts.reps_per_territory):
                rep = conn.execute(
                    "INSERT INTO users (email, name, role, territory_id, manager_id, skills, home_location) "
                    "VALUES (%s, %s, 'rep', %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
                    (
                        f"rep{t}_{k}@seed.fieldmesh.test",
                        f"Rep {t}.{k}",
                        t,
                        mgr[0],
                        ["install", "repair"][: 1 + k % 2],
                        rng.uniform(-10, 30),
                        rng.uniform(36, 60),
                    ),
                ).fetchone()
                assert rep is not None
                reps[t].append(rep[0])
        n_terr = len(territory_ids)
        base = conn.execute("SELECT coalesce(max(id), 0) FROM accounts").fetchone()
        assert base is not None
        first_account = int(base[0]) + 1

        def account_territory(i: int) -> int:
            return int(territory_ids[i % n_terr])

        def account_owner(i: int) -> int:
            rs = reps[account_territory(i)]
            return rs[(i // n_terr) % len(rs)]

        def account_row(i: int) -> str:
            lon, lat = rng.uniform(-10, 30), rng.uniform(36, 60)
            typ = ACCOUNT_TYPES[i % len(ACCOUNT_TYPES)]
            freq = {"customer": 30, "prospect": 60, "partner": 90}[typ]
            custom = json.dumps(
                {"tier": ("gold", "silver", "bronze")[i % 3], "employees": rng.randint(5, 5000)}
            )
            return (
                f"{COMPANY_A[i % 10]} {COMPANY_B[(i // 10) % 10]} {i}\t{typ}\t{rng.randint(1, 500) * 10000}\tEUR\t"
                f"{i} Main Street\tSRID=4326;POINT({lon:.6f} {lat:.6f})\t{account_territory(i)}\t{account_owner(i)}\t"
                f"{rng.randint(10, 100)}\t{freq}\t{custom}\n"
            )

        _copy(
            conn,
            "accounts",
            (
                "name",
                "type",
                "annual_revenue",
                "currency",
                "address",
                "location",
                "territory_id",
                "owner_id",
                "health_score",
                "visit_frequency_days",
                "custom",
            ),
            counts.accounts,
            account_row,
            progress,
        )

        def contact_row(i: int) -> str:
            a = i % counts.accounts
            fn, ln = rng.choice(FIRST), rng.choice(LAST)
            phone = f"+4930{i:08d}"
            return (
                f"{fn}\t{ln}\t{fn.lower()}.{ln.lower()}.{i}@example.com\t{phone}\t{phone}\t"
                f'{account_owner(a)}\t{account_territory(a)}\t{{"segment": "{("smb", "mid", "ent")[i % 3]}"}}\n'
            )

        _copy(
            conn,
            "contacts",
            (
                "first_name",
                "last_name",
                "email",
                "phone",
                "phone_normalized",
                "owner_id",
                "territory_id",
                "custom",
            ),
            counts.contacts,
            contact_row,
            progress,
        )
        cbase = conn.execute("SELECT min(id) FROM contacts").fetchone()
        assert cbase is not None and cbase[0] is not None
        first_contact = int(cbase[0])
        conn.execute(
            """
            INSERT INTO account_contacts (account_id, contact_id, role)
            SELECT %s + ((c.id - %s) %% %s), c.id,
                   CASE WHEN (c.id - %s) < %s THEN 'primary' ELSE 'secondary' END
            FROM contacts c
            """,
            (first_account, first_contact, counts.accounts, first_contact, counts.accounts),
        )

        def activity_row(i: int) -> str:
            a = rng.randrange(counts.accounts)
            at = now - dt.timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60))
            typ = ACTIVITY_TYPES[i % 5]
            contact = first_contact + a if a < counts.contacts else "\\N"
            return (
                f"{typ}\t{typ.capitalize()} about order {i}\tdone\t{at.isoformat()}\t{first_account + a}\t{contact}\t"
                f"{account_owner(a)}\t{account_territory(a)}\t{at.isoformat()}\n"
            )

        _copy(
            conn,
            "activities",
            (
                "type",
                "subject",
                "status",
                "start_at",
                "account_id",
                "contact_id",
                "owner_id",
                "territory_id",
                "created_at",
            ),
            counts.activities,
            activity_row,
            progress,
        )
        n_opps = counts.opportunities or max(counts.accounts // 4, 1)
        conn.execute(
            """
            INSERT INTO opportunities (name, account_id, pipeline_id, stage_id, amount, currency, close_date,
                                       probability, status, owner_id, territory_id, created_at, closed_at)
            SELECT 'Deal ' || g, a.id, s.pipeline_id, s.id, (1000 + (g * 7919) %% 90000), 'EUR',
                   DATE '2026-01-01' + ((g * 37) %% 540),
                   s.probability, CASE WHEN s.is_won THEN 'won' WHEN s.is_lost THEN 'lost' ELSE 'open' END,
                   a.owner_id, a.territory_id, TIMESTAMPTZ '2025-06-01' + (g %% 200) * interval '1 day',
                   CASE WHEN s.is_won OR s.is_lost
                        THEN TIMESTAMPTZ '2025-06-01' + (g %% 200 + 5 + g %% 60) * interval '1 day' END
            FROM generate_series(0, %s - 1) g
            JOIN accounts a ON a.id = %s + (g * 4) %% %s
            JOIN LATERAL (SELECT * FROM pipeline_stages st
                          WHERE st.pipeline_id = (SELECT id FROM pipelines ORDER BY is_default DESC, id LIMIT 1)
                          ORDER BY st.position OFFSET (g %% 6) LIMIT 1) s ON true
            """,
            (n_opps, first_account, counts.accounts),
        )
        conn.execute(
            "INSERT INTO opportunity_stage_history (opportunity_id, to_stage_id, amount, changed_at) "
            "SELECT id, stage_id, amount, created_at FROM opportunities"
        )
        if progress:
            progress("opportunities", n_opps, n_opps)
        for table in (
            "accounts",
            "contacts",
            "activities",
            "opportunities",
            "users",
            "territories",
        ):
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        # the activities were loaded with the rollup's triggers off too (migration c3201)
        conn.execute("SELECT crm_activity_rollup_rebuild()")
        conn.commit()
        conn.autocommit = True
        for table in ("accounts", "contacts", "activities", "opportunities", "account_contacts"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return {
        "territories": counts.territories,
        "accounts": counts.accounts,
        "contacts": counts.contacts,
        "activities": counts.activities,
        "opportunities": n_opps,
    }
