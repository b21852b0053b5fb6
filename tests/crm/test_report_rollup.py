"""Grouped activity reports answered from the hourly rollup (`crm.rollups`, migration c3201)
give exactly the rows the activities table gives: for randomised definitions, principals
and time zones, after inserts, updates (owner, type, territory, time) and deletes, direct
and cascaded; the rollup itself always equals a fresh aggregate of the table; a rep's
report counts only their rows; a definition the rollup cannot answer reads the table."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import AsyncConnection, IsolationLevel

from crm.reports import ReportDefinition, compile_report, run_report
from crm.rollups import choose, rollup_for, zone_fits_span
from crm.seed import SeedCounts, seed
from fieldmesh import services
from fieldmesh.migrate import upgrade
from kernel.principal import Principal
from kernel.settings import Settings

TYPES = ["call", "email", "meeting", "task", "note"]
STATUSES = ["open", "done", "cancelled"]
SOURCES = ["manual", "visit", "calendar"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Pacific/Auckland", "Asia/Kolkata"]
# around the 2026 DST changes of Paris (29 March, 25 October) and New York (8 March)
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SPAN_H = 24 * 250

GRAINS = ("hour", "day", "month")
_DRIFT = """
    SELECT count(*) FROM (
        (SELECT date_trunc('{g}', occurred_at, 'UTC'), type, status, source, owner_id,
                territory_id, count(*) FROM activities GROUP BY 1, 2, 3, 4, 5, 6
         EXCEPT ALL
         SELECT occurred_at, type, status, source, owner_id, territory_id, sum(n)
         FROM activity_rollup_{g} GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0)
        UNION ALL
        (SELECT occurred_at, type, status, source, owner_id, territory_id, sum(n)
         FROM activity_rollup_{g} GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0
         EXCEPT ALL
         SELECT date_trunc('{g}', occurred_at, 'UTC'), type, status, source, owner_id,
                territory_id, count(*) FROM activities GROUP BY 1, 2, 3, 4, 5, 6)
    ) drift"""


ADMIN = Principal(1, "admin@x.test", "admin", None, (1,), ())


def definition(**kw: Any) -> ReportDefinition:
    return msgspec.convert({"entity": "activities", **kw}, ReportDefinition)


class World(msgspec.Struct):
    territories: list[int]
    users: list[int]
    accounts: list[int]
    admin: Principal
    rep: Principal
    manager: Principal


@pytest.fixture
def world(db_dsn: str) -> World:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        terr = [
            r[0]
            for r in conn.execute(
                "INSERT INTO territories (name) SELECT %s || g FROM generate_series(1, 3) g"
                " RETURNING id",
                (f"rollup {tag} ",),
            )
        ]
        users = []
        for i in range(4):
            row = conn.execute(
                "INSERT INTO users (email, name, role, territory_id) VALUES (%s, %s, 'rep', %s)"
                " RETURNING id",
                (f"r{i}.{tag}@rollup.test", f"Rep {i} {tag}", terr[i % 3]),
            ).fetchone()
            assert row is not None
            users.append(row[0])
        accounts = [
            r[0]
            for r in conn.execute(
                "INSERT INTO accounts (name, territory_id) SELECT %s || g, (%s::bigint[])[1 + g %% 3]"
                " FROM generate_series(1, 4) g RETURNING id",
                (f"Rollup {tag} ", terr),
            )
        ]
    return World(
        terr,
        users,
        accounts,
        Principal(1, "admin@x.test", "admin", None, (1,), ()),
        Principal(users[0], "r0@x.test", "rep", terr[0], (users[0],), (terr[0],)),
        Principal(users[1], "m@x.test", "manager", terr[1], (users[1], users[2]), (terr[1],)),
    )


def insert(db_dsn: str, w: World, rng: random.Random, count: int) -> None:
    rows = []
    for _ in range(count):
        at = T0 + dt.timedelta(minutes=rng.randrange(SPAN_H * 60), seconds=rng.randrange(60))
        start, due = (at, None) if rng.random() < 0.7 else (None, at)
        rows.append(
            (
                rng.choice(TYPES),
                rng.choice(STATUSES),
                rng.choice(SOURCES),
                rng.choice([*w.users, None]),
                rng.choice([*w.territories, None]),
                rng.choice([*w.accounts, None]),
                start,
                due,
            )
        )
    with psycopg.connect(db_dsn) as conn:
        # one multi-row statement and a few single-row ones
        conn.cursor().executemany(
            "INSERT INTO activities (type, subject, status, source, owner_id, territory_id,"
            " account_id, start_at, due_at) VALUES (%s, 'rollup', %s, %s, %s, %s, %s, %s, %s)",
            rows[:5],
        )
        conn.execute(
            "INSERT INTO activities (type, subject, status, source, owner_id, territory_id,"
            " account_id, start_at, due_at) SELECT ty, 'rollup', st, so, ow, te, ac, sa, du"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[],"
            " %s::bigint[], %s::timestamptz[], %s::timestamptz[])"
            " AS u (ty, st, so, ow, te, ac, sa, du)",
            [[r[i] for r in rows[5:]] for i in (0, 1, 2, 3, 4, 5, 6, 7)],
        )


def mutate(db_dsn: str, w: World, rng: random.Random) -> None:
    """Owner, type, status, territory and time changes; deletes; cascades from a deleted
    user (owner set null) and a deleted account (its activities deleted)."""
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "UPDATE activities SET owner_id = %s, type = %s WHERE subject = 'rollup'"
            " AND id %% 5 = %s",
            (rng.choice(w.users), rng.choice(TYPES), rng.randrange(5)),
        )
        conn.execute(
            "UPDATE activities SET territory_id = %s, status = %s, start_at = start_at"
            " + make_interval(mins => %s) WHERE subject = 'rollup' AND id %% 7 = %s",
            (rng.choice(w.territories), rng.choice(STATUSES), rng.randrange(-600, 600), 3),
        )
        conn.execute(  # no row changes group, or only its time within the hour
            "UPDATE activities SET subject = 'rollup' WHERE subject = 'rollup' AND id % 4 = 1"
        )
        conn.execute("DELETE FROM activities WHERE subject = 'rollup' AND id %% 9 = %s", (2,))
        one = conn.execute(
            "SELECT id FROM activities WHERE subject = 'rollup' ORDER BY id LIMIT 1"
        ).fetchone()
        if one:
            conn.execute("DELETE FROM activities WHERE id = %s", one)
        conn.commit()


def delete_user_and_account(db_dsn: str, w: World) -> None:
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DELETE FROM users WHERE id = %s", (w.users[3],))
        conn.execute("DELETE FROM accounts WHERE id = %s", (w.accounts[3],))
        conn.commit()


def random_filter(w: World, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.3:
        key = rng.choice(["and", "or"])
        return {key: [random_filter(w, rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if depth < 2 and rng.random() < 0.1:
        return {"not": random_filter(w, rng, depth + 1)}
    hour = T0 + dt.timedelta(hours=rng.randrange(SPAN_H))
    day = T0 + dt.timedelta(days=rng.randrange(SPAN_H // 24))
    month = dt.datetime(2026, rng.randrange(3, 12), 1, tzinfo=dt.UTC)
    return rng.choice(
        [
            {"field": "type", "op": "eq", "value": rng.choice(TYPES)},
            {"field": "type", "op": "in", "value": rng.sample(TYPES, 2)},
            {"field": "status", "op": "ne", "value": rng.choice(STATUSES)},
            {"field": "source", "op": "contains", "value": rng.choice(["man", "VIS", "cal"])},
            {"field": "owner_id", "op": "is_null", "value": rng.random() < 0.5},
            {"field": "owner_id", "op": "in", "value": rng.sample(w.users, 2)},
            {"field": "territory_id", "op": "gte", "value": w.territories[1]},
            {"field": "occurred_at", "op": "gte", "value": hour.isoformat()},
            {"field": "occurred_at", "op": "lt", "value": hour.isoformat()},
            {"field": "occurred_at", "op": "gte", "value": day.isoformat()},
            {"field": "occurred_at", "op": "lt", "value": month.isoformat()},
            {"field": "occurred_at", "op": "is_null", "value": False},
        ]
    )


def random_definition(w: World, rng: random.Random) -> ReportDefinition:
    dims: list[dict[str, Any]] = [
        {"field": f} for f in ("type", "status", "source", "owner_id", "territory_id")
    ] + [{"field": "occurred_at", "bucket": b} for b in ("day", "week", "month", "quarter", "year")]
    measures: list[dict[str, Any]] = [
        {"agg": "count"},
        {"agg": "count", "field": "owner_id"},
        {"agg": "count", "field": "occurred_at"},
        *(
            {"agg": a, "field": f}
            for a in ("sum", "avg", "min", "max")
            for f in ("owner_id", "territory_id")
        ),
    ]
    group_by = rng.sample(dims, rng.randint(0, 2))
    if len(group_by) == 2 and group_by[0]["field"] == group_by[1]["field"]:
        group_by = group_by[:1]
    return definition(
        group_by=group_by,
        measures=rng.sample(measures, rng.randint(1, 3)),
        filter=random_filter(w, rng) if rng.random() < 0.7 else None,
        limit=rng.choice([5, 200, 1000]),
    )


async def both(
    db_dsn: str, who: Principal, d: ReportDefinition, zone: str
) -> tuple[list[Any], list[Any], str | None]:
    """(rows from the table, rows as run_report answers them, the rollup that read, if
    any), in one snapshot."""
    async with await AsyncConnection.connect(db_dsn) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        await conn.execute(f"SET TimeZone = '{zone}'")
        raw = await run_report(conn, who, d, rollups=False)
        chosen = await choose(conn, d, zone)
        used = chosen.grain if chosen else None
        fast = await run_report(conn, who, d)
        await conn.rollback()
    assert raw.columns == fast.columns and raw.truncated == fast.truncated
    return raw.rows, fast.rows, used


def check_random_reports(db_dsn: str, w: World, rng: random.Random, n: int) -> list[str]:
    """The grains that answered."""
    used = []
    for i in range(n):
        d = random_definition(w, rng)
        who = [w.admin, w.rep, w.manager][i % 3]
        zone = ZONES[i % len(ZONES)]
        raw, fast, grain = asyncio.run(both(db_dsn, who, d, zone))
        assert fast == raw, (d, who.role, zone)
        if zone == "UTC":  # always answerable in UTC
            assert grain, d
        if grain:
            used.append(grain)
    return used


def drift(db_dsn: str) -> int:
    """Groups in which a rollup differs from a fresh aggregate of the activities (all
    grains)."""
    total = 0
    with psycopg.connect(db_dsn) as conn:
        for g in GRAINS:
            row = conn.execute(_DRIFT.format(g=g)).fetchone()
            assert row is not None
            total += int(row[0])
    return total


def test_rollup_reports_equal_the_tables_through_inserts_updates_and_deletes(
    db_dsn: str, world: World
) -> None:
    rng = random.Random(15)
    insert(db_dsn, world, rng, 3000)
    assert drift(db_dsn) == 0
    used = check_random_reports(db_dsn, world, rng, 60)
    for _ in range(2):
        mutate(db_dsn, world, rng)
        insert(db_dsn, world, rng, 200)
        assert drift(db_dsn) == 0
        used += check_random_reports(db_dsn, world, rng, 30)
    delete_user_and_account(db_dsn, world)
    assert drift(db_dsn) == 0
    used += check_random_reports(db_dsn, world, rng, 30)
    # most definitions were answered from a rollup, each grain some of them
    assert len(used) >= 60 and set(used) == set(GRAINS)


def test_the_seed_loads_activities_with_triggers_off_and_rebuilds_the_rollup(
    services_up: Settings,
) -> None:
    name = f"fm_rollup_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    try:
        upgrade(dsn)
        seed(dsn, SeedCounts(accounts=40, contacts=20, activities=500, territories=2))
        assert drift(dsn) == 0
        with psycopg.connect(dsn) as conn:
            for g in GRAINS:
                got = conn.execute(f"SELECT sum(n) FROM activity_rollup_{g}").fetchone()
                assert got == (500,)
    finally:
        services.drop_database(services_up, name)


def test_an_activity_added_and_removed_by_writers_of_two_stripes_leaves_no_group(
    db_dsn: str,
) -> None:
    """Each writer adds to its own stripe (backend pid modulo 8): +1 in one, -1 in another,
    and the report has no group for it."""
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(db_dsn, autocommit=True) as a:
        pid = a.info.backend_pid
        row = a.execute(
            "INSERT INTO activities (type, subject, source, owner_id, start_at)"
            " VALUES ('task', 'x', %s, NULL, '2026-05-05 10:20+00') RETURNING id",
            (tag,),
        ).fetchone()
        assert row is not None
        others = [psycopg.connect(db_dsn, autocommit=True) for _ in range(30)]
        try:
            b = next(c for c in others if c.info.backend_pid % 8 != pid % 8)
            b.execute("DELETE FROM activities WHERE id = %s", row)
            stripes = b.execute(
                "SELECT n FROM activity_rollup_hour WHERE source = %s ORDER BY n", (tag,)
            ).fetchall()
        finally:
            for c in others:
                c.close()
    assert stripes == [(-1,), (1,)]
    assert drift(db_dsn) == 0
    d = definition(
        filter={"field": "source", "op": "eq", "value": tag}, group_by=[{"field": "type"}]
    )
    raw, fast, grain = asyncio.run(both(db_dsn, ADMIN, d, "UTC"))
    assert raw == fast == [] and grain == "month"


def test_a_reps_rollup_report_counts_only_their_territory_and_own_rows(
    db_dsn: str, world: World
) -> None:
    insert(db_dsn, world, random.Random(3), 300)
    d = definition(group_by=[{"field": "type"}], measures=[{"agg": "count"}])
    assert rollup_for(d) is not None
    rep = world.rep
    _, rows, used = asyncio.run(both(db_dsn, rep, d, "UTC"))
    assert used
    with psycopg.connect(db_dsn) as conn:
        expected: dict[str, int] = dict(
            conn.execute(
                "SELECT type, count(*) FROM activities WHERE territory_id = %s OR owner_id = %s"
                " GROUP BY type",
                (rep.territory_id, rep.user_id),
            ).fetchall()
        )
        everyone = conn.execute("SELECT count(*) FROM activities").fetchone()
    assert dict((r[0], r[1]) for r in rows) == expected
    assert everyone is not None and sum(expected.values()) < everyone[0]


def test_paris_month_buckets_from_the_rollup_follow_the_local_date(db_dsn: str) -> None:
    """An activity at 23:30 UTC on 31 March is in April in Paris (UTC+2): the rollup's
    hour puts it there too."""
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for at in ("2026-03-31 21:59+00", "2026-03-31 22:00+00", "2026-03-31 23:30+00"):
            conn.execute(
                "INSERT INTO activities (type, subject, source, start_at) VALUES ('call', 'x', %s, %s)",
                (tag, at),
            )
    d = definition(
        filter={"field": "source", "op": "eq", "value": tag},
        group_by=[{"field": "occurred_at", "bucket": "month"}],
    )
    for zone, expected in (
        ("UTC", [["2026-03-01", 3]]),
        ("Europe/Paris", [["2026-03-01", 1], ["2026-04-01", 2]]),
    ):
        raw, fast, _ = asyncio.run(
            both(db_dsn, Principal(1, "a@x", "admin", None, (1,), ()), d, zone)
        )
        assert raw == fast == expected, zone


@pytest.mark.parametrize(
    "kw",
    [
        {"group_by": [{"field": "account_id"}]},  # not a dimension of the rollup
        {"group_by": [{"field": "created_at", "bucket": "month"}]},  # another time field
        {"measures": [{"agg": "sum", "field": "version"}]},  # not a dimension
        {"measures": [{"agg": "count", "field": "contact_id"}]},
        {"filter": {"field": "subject", "op": "contains", "value": "x"}},
        {"filter": {"field": "occurred_at", "op": "gte", "value": "2026-01-01T10:30:00Z"}},
        {"filter": {"field": "occurred_at", "op": "gt", "value": "2026-01-01T10:00:00Z"}},
        {"filter": {"field": "occurred_at", "op": "lte", "value": "2026-01-01T10:00:00Z"}},
        {
            "filter": {
                "or": [
                    {"field": "type", "op": "eq", "value": "call"},
                    {"field": "body", "op": "is_null", "value": True},
                ]
            }
        },
        {"columns": ["subject", "type"]},  # a listing of records
    ],
)
def test_definitions_the_rollup_cannot_answer_read_the_table(kw: dict[str, Any]) -> None:
    d = definition(**kw)
    assert rollup_for(d) is None
    stmt, _, _ = compile_report(d, Principal(1, "a@x", "admin", None, (1,), ()))
    assert 'FROM "activities" t' in stmt.as_string(None)


@pytest.mark.parametrize(
    ("kw", "grain"),
    [
        ({"group_by": [{"field": "occurred_at", "bucket": "quarter"}]}, "month"),
        ({"group_by": [{"field": "type"}]}, "month"),
        ({"group_by": [{"field": "occurred_at", "bucket": "week"}]}, "day"),
        ({"filter": {"field": "occurred_at", "op": "gte", "value": "2026-02-03T00:00:00Z"}}, "day"),
        (
            {"filter": {"field": "occurred_at", "op": "lt", "value": "2026-02-01T00:00:00Z"}},
            "month",
        ),
        (
            {
                "filter": {
                    "field": "occurred_at",
                    "op": "gte",
                    "value": "2026-01-01T09:00:00+01:00",
                },
                "group_by": [{"field": "occurred_at", "bucket": "month"}, {"field": "owner_id"}],
                "measures": [{"agg": "count"}, {"agg": "avg", "field": "territory_id"}],
            },
            "hour",
        ),
    ],
)
def test_the_coarsest_rollup_that_answers_exactly_is_read(kw: dict[str, Any], grain: str) -> None:
    d = definition(**kw)
    r = rollup_for(d)
    assert r is not None and r.grain == grain
    stmt, _, _ = compile_report(d, Principal(7, "r@x", "rep", 3, (7,), (3,)), rollup=r)
    assert f'FROM "activity_rollup_{grain}" GROUP BY' in stmt.as_string(None)


def test_zones_whose_local_days_are_whole_utc_hours() -> None:
    a, b = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    assert zone_fits_span("Europe/Paris", a, b)
    assert zone_fits_span("America/New_York", a, b)
    assert zone_fits_span("Pacific/Auckland", a, b)
    assert not zone_fits_span("Asia/Kolkata", a, b)  # UTC+5:30
    assert not zone_fits_span("Australia/Lord_Howe", a, b)  # half-hour DST
    assert not zone_fits_span("Europe/Paris", dt.datetime(1900, 1, 1, tzinfo=dt.UTC), b)  # LMT
    assert not zone_fits_span("Not/A_Zone", a, b)
