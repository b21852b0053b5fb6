"""Calendar bookings (issue 17 part B): the slot finder's latency and conflict-free booking
under concurrency, against the embedded PostgreSQL.

- Slot finder: 10 attendees (reps in three IANA zones) and 2 resources over 4 weeks, an
  on-site meeting (travel from routing's matrix), with a realistic load per attendee:
  each working day 2 CRM meetings or calls, 0-1 scheduled work order and 1-2 planned
  visits of a ready routing plan (with the drive into each), plus bookings of the two
  resources; Friday afternoons stay free, so the ten have a few common hours a week. Timed end to end (busy time loaded from the database, then the search),
  p50/p99 over many queries with different windows. Baseline in the same run: the naive
  minute-by-minute scan (`calendars.slots.naive_slots`: a bitmap of free minutes per
  attendee and booked units per resource, every grid start checked) on the same loaded
  calendars, searching the same window (earliest slots; the fast finder's earliest mode
  is also timed on the same input, and both must agree).
- Bookings: 200 concurrent bookings (40 connections) of random overlapping hours on 20
  resources (capacities 1 and 2), through `calendars.bookings.book`; afterwards the
  database is swept for any instant where more bookings overlap than a resource's
  capacity: `double_bookings` counts those (must be 0).

    python -m bench.calendar_booking [--quick]

Last line: JSON with `slot_finder_p99_ms` and `double_bookings` (plus details).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from rich.console import Console
from rich.table import Table

from kernel.settings import Settings, load_settings

DB_NAME = "fm_bench_calendar_booking"
ZONES = ("Europe/Paris", "Europe/Berlin", "Europe/London")
CENTRE = (2.35, 48.86)


def _p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _seed(dsn: str, rng: random.Random, start: date, days: int) -> dict[str, Any]:
    """Reps, accounts and four weeks of calendar load; ids the measurements need."""
    with psycopg.connect(dsn) as conn:
        t = conn.execute("INSERT INTO territories (name) VALUES ('bench') RETURNING id").fetchone()[
            0
        ]  # type: ignore[index]
        reps = []
        for i in range(10):
            lon = CENTRE[0] + rng.uniform(-0.3, 0.3)
            lat = CENTRE[1] + rng.uniform(-0.2, 0.2)
            reps.append(
                conn.execute(
                    "INSERT INTO users (email, name, role, territory_id, timezone, shift_start,"
                    " shift_end, home_location) VALUES (%s, %s, 'rep', %s, %s, '08:00', '18:00',"
                    " ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
                    (f"rep{i}@bench.test", f"Rep {i}", t, ZONES[i % 3], lon, lat),
                ).fetchone()[0]  # type: ignore[index]
            )
        accounts = []
        for i in range(120):
            lon = CENTRE[0] + rng.uniform(-0.4, 0.4)
            lat = CENTRE[1] + rng.uniform(-0.25, 0.25)
            accounts.append(
                conn.execute(
                    "INSERT INTO accounts (name, territory_id, location) VALUES"
                    " (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
                    (f"acct {i}", t, lon, lat),
                ).fetchone()[0]  # type: ignore[index]
            )
        acts: list[tuple[Any, ...]] = []
        wos: list[tuple[Any, ...]] = []
        stops: dict[date, list[tuple[Any, ...]]] = {}
        for d in range(days):
            day = start + timedelta(days=d)
            if day.weekday() >= 5:
                continue
            for rep in reps:
                base = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
                # quarter hours from 07:00 UTC; Friday afternoons are kept free of field
                # work (as many teams do), so ten people have a few common hours a week
                slots = rng.sample(range(0, 24 if day.weekday() == 4 else 40), 8)
                for k in slots[:2]:
                    s = base + timedelta(minutes=15 * k)
                    dur = rng.choice([30, 45, 60])
                    acts.append(
                        (rng.choice(["meeting", "call"]), "bench meeting", s,
                         s + timedelta(minutes=dur), rep, rng.choice(accounts), t)
                    )  # fmt: skip
                for k in slots[4:5] if rng.random() < 0.5 else []:
                    s = base + timedelta(minutes=15 * k)
                    wos.append((rng.choice(accounts), "bench job", rep, s, s + timedelta(hours=1)))
                for k in slots[6 : rng.choice([7, 8])]:
                    s = base + timedelta(minutes=15 * k)
                    stops.setdefault(day, []).append(
                        (rep, s - timedelta(minutes=20), s, s + timedelta(minutes=45),
                         rng.choice(accounts), 1200.0)
                    )  # fmt: skip
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id, account_id,"
                " territory_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                acts,
            )
            cur.executemany(
                "INSERT INTO work_orders (account_id, title, status, assignee_id, scheduled_start,"
                " scheduled_end) VALUES (%s, %s, 'scheduled', %s, %s, %s)",
                wos,
            )
            for day, rows in stops.items():
                plan = conn.execute(
                    "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
                    " VALUES (%s, %s, 'ready', '{}') RETURNING id",
                    (t, day),
                ).fetchone()[0]  # type: ignore[index]
                cur.executemany(
                    "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id, eta,"
                    " service_start, service_end, wait_s, slack_s, travel_s, distance_m)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s, 0)",
                    [
                        (plan, f"v{i}", rep, i + 1, acc, eta, s, e, tr)
                        for i, (rep, eta, s, e, acc, tr) in enumerate(rows)
                    ],
                )
        res = []
        for name, kind, cap in (("Room A", "room", 1), ("Van 1", "vehicle", 2)):
            rid = conn.execute(
                "INSERT INTO cal_resources (name, kind, capacity) VALUES (%s, %s, %s) RETURNING id",
                (name, kind, cap),
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO cal_resource_units SELECT %s, g FROM generate_series(1, %s) g",
                (rid, cap),
            )
            res.append(rid)
            for d in range(days):
                day = start + timedelta(days=d)
                for k in rng.sample(range(0, 40), 3):
                    s = datetime(day.year, day.month, day.day, 7, tzinfo=UTC) + timedelta(
                        minutes=15 * k
                    )
                    try:
                        with conn.transaction():
                            conn.execute(
                                "INSERT INTO cal_bookings (resource_id, unit, during, title)"
                                " VALUES (%s, 1, tstzrange(%s, %s), 'bench')",
                                (rid, s, s + timedelta(hours=1)),
                            )
                    except psycopg.errors.ExclusionViolation:
                        pass
        n_items = len(acts) + len(wos) + sum(len(v) for v in stops.values())
    return {"reps": reps, "accounts": accounts, "resources": res, "territory": t, "items": n_items}


async def _slot_finder(dsn: str, world: dict[str, Any], start: date, quick: bool) -> dict[str, Any]:
    from calendars import busy, resources
    from calendars.booking_routes import search_slots
    from calendars.slots import Query, find_slots, naive_slots

    rng = random.Random(11)
    runs = 25 if quick else 100
    times: list[float] = []
    found = 0
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        site_rows = await conn.execute(
            "SELECT ST_X(location::geometry), ST_Y(location::geometry) FROM accounts WHERE id = ANY(%s)",
            (world["accounts"],),
        )
        sites = [(float(x), float(y)) for x, y in await site_rows.fetchall()]
        t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
        for i in range(runs + 3):
            s = t0 + timedelta(hours=rng.randrange(0, 72))
            e = s + timedelta(weeks=4)
            began = time.perf_counter()
            out = await search_slots(
                conn, world["reps"], world["resources"], s, e, timedelta(minutes=60),
                site=rng.choice(sites), mode="best", limit=10, now=s,
            )  # fmt: skip
            if i >= 3:  # the first runs warm caches and the planner
                times.append((time.perf_counter() - began) * 1000)
                found += len(out)
        # baseline: the same loaded calendars, the minute scan against the fast finder
        s = t0
        e = s + timedelta(weeks=4)
        people = await busy.attendees(conn, world["reps"], s, e)
        loads = await resources.loads(conn, world["resources"], s, e)
    q = Query(tuple(people), tuple(loads), s, e, timedelta(minutes=60), limit=10, now=s)
    naive_ms, fast_ms = [], []
    for _ in range(1 if quick else 3):
        b = time.perf_counter()
        ref = naive_slots(q)
        naive_ms.append((time.perf_counter() - b) * 1000)
        b = time.perf_counter()
        got = [x.start for x in find_slots(q)]
        fast_ms.append((time.perf_counter() - b) * 1000)
    return {
        "slot_finder_p50_ms": round(statistics.median(times), 2),
        "slot_finder_p99_ms": round(_p(times, 0.99), 2),
        "slot_finder_runs": len(times),
        "slots_found_mean": round(found / len(times), 2),
        "busy_items_per_attendee": round(sum(len(p.busy) for p in people) / len(people), 1),
        "naive_scan_ms": round(statistics.median(naive_ms), 2),
        "fast_pure_ms": round(statistics.median(fast_ms), 3),
        "naive_over_fast": round(
            statistics.median(naive_ms) / max(statistics.median(fast_ms), 1e-6), 1
        ),
        "naive_agrees": ref == got,
    }


async def _bookings(dsn: str, rng: random.Random) -> dict[str, Any]:
    from calendars import bookings, resources
    from calendars.bookings import BookingConflict

    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        ids = []
        for i in range(20):
            r = await resources.create(
                conn, name=f"pool {i}", kind="vehicle", capacity=1 + i % 2, territory_id=None,
                created_by=None,
            )  # fmt: skip
            ids.append(r.id)
    day = datetime(2031, 3, 3, 8, tzinfo=UTC)
    requests = []
    for _ in range(200):
        s = day + timedelta(minutes=30 * rng.randrange(0, 16))
        requests.append((rng.choice(ids), s, s + timedelta(minutes=rng.choice([60, 90, 120]))))
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, min_size=40, max_size=40, open=False)
    await pool.open(wait=True)
    gate = asyncio.Event()

    async def one(rid: int, s: datetime, e: datetime) -> str:
        async with pool.connection() as c:
            await gate.wait()
            try:
                await bookings.book(
                    c, resource_id=rid, start=s, end=e, title="race", user_id=None,
                    activity_id=None, created_by=None,
                )  # fmt: skip
            except BookingConflict:
                return "409"
            return "201"

    tasks = [asyncio.create_task(one(*r)) for r in requests]
    await asyncio.sleep(0.2)
    began = time.perf_counter()
    gate.set()
    results = await asyncio.gather(*tasks)
    took = time.perf_counter() - began
    await pool.close()
    async with await AsyncConnection.connect(dsn) as conn:
        # every instant where more bookings overlap than the resource's capacity
        cur = await conn.execute(
            """
            WITH b AS (
                SELECT b.resource_id, r.capacity, lower(b.during) AS s, upper(b.during) AS e
                FROM cal_bookings b JOIN cal_resources r ON r.id = b.resource_id
                WHERE b.status = 'booked' AND b.resource_id = ANY(%s))
            SELECT count(*) FROM b x
            WHERE (SELECT count(*) FROM b y WHERE y.resource_id = x.resource_id
                   AND y.s <= x.s AND y.e > x.s) > x.capacity
            """,
            (ids,),
        )
        over = int((await cur.fetchone())[0])  # type: ignore[index]
    return {
        "bookings_tried": len(results),
        "bookings_201": results.count("201"),
        "bookings_409": results.count("409"),
        "bookings_s": round(took, 3),
        "double_bookings": over,
    }


def measure(settings: Settings, quick: bool) -> dict[str, Any]:
    from fieldmesh import services
    from fieldmesh.migrate import upgrade

    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    services.drop_database(settings, DB_NAME)
    dsn = services.create_database(settings, DB_NAME)
    try:
        upgrade(dsn)
        rng = random.Random(5)
        start = datetime.now(UTC).date() + timedelta(days=7)
        world = _seed(dsn, rng, start, 31)
        out = asyncio.run(_slot_finder(dsn, world, start, quick))
        out.update(asyncio.run(_bookings(dsn, rng)))
        out["calendar_items_seeded"] = world["items"]
    finally:
        services.drop_database(settings, DB_NAME)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = measure(load_settings(), args.quick)
    console = Console()
    table = Table(title="calendar bookings")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in out.items():
        table.add_row(k, str(v))
    console.print(table)
    console.print(
        f"slot finder p99 {out['slot_finder_p99_ms']} ms (target < 200); the minute scan"
        f" {out['naive_scan_ms']} ms vs {out['fast_pure_ms']} ms for the same search;"
        f" {out['double_bookings']} double bookings in {out['bookings_tried']} racing requests"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
