"""Calendar sync benchmark: 10,000 events (1,000 recurring) from an empty CRM to the
embedded CalDAV server and back, then an empty incremental round.

    python -m bench.calendar [--quick] [--events N]

1. out: N CRM activities of user A (a tenth of them weekly series with an exception) go
   to A's empty calendar on the embedded Radicale in one sync round;
2. back: user B, with nothing in the CRM, syncs the same calendar: every event becomes
   an activity of B's (recurrences kept);
3. replay: B's sync token is dropped (a lost token or a restored backup) and B syncs
   again: nothing may be duplicated;
4. the empty incremental round: A syncs with nothing changed (median of 5), against the
   baseline measured in the same run, a naive full re-sync (list every object, fetch
   every object, parse and compare; what a client without sync tokens and ETags does).

`sync_events_per_s` is 2N over the out and back rounds' time; `duplicates` counts
objects on the server or activities in the CRM beyond one per UID; `lost` counts UIDs
of A's missing on the server or at B. Part B of the calendars issue (resources,
bookings, the slot finder) adds `slot_finder_p99_ms` and `double_bookings` from
`bench/calendar_booking.py` (its `run(settings, dsn, quick) -> dict`) to the same last
line: PARTS below lists it; until that module exists the two keys are null.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from psycopg import AsyncConnection
from rich.console import Console
from rich.table import Table

from calendars import service
from calendars.caldav_client import LONG_TIMEOUT_S, CalDav
from calendars.ical import parse_calendar
from calendars.store import account
from calendars.sync import ClientPool, RoundStats, sync_user
from crm import hooks
from fieldmesh import services, svc_caldav
from fieldmesh.migrate import upgrade
from kernel import secretbox
from kernel.settings import Settings, load_settings

TENANT = "bench"
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bench.calendar_booking", ("slot_finder_p99_ms", "double_bookings")),
)


async def _user(conn: AsyncConnection[Any], name: str, territory: int) -> int:
    cur = await conn.execute(
        "INSERT INTO users (email, name, role, territory_id, timezone) "
        "VALUES (%s, %s, 'rep', %s, 'Europe/Berlin') RETURNING id",
        (f"{name}-{uuid.uuid4().hex[:6]}@bench.test", name, territory),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _seed(
    conn: AsyncConnection[Any], user: int, territory: int, n: int, recurring: int
) -> None:
    """n activities over the next year; the first `recurring` are weekly series (10:00
    Berlin, 12 weeks, one cancelled instance), crossing the autumn DST change."""
    await conn.execute(
        """
        INSERT INTO activities (type, subject, body, start_at, end_at, tz, owner_id, territory_id)
        SELECT (ARRAY['meeting', 'call', 'task'])[1 + i %% 3], 'Bench event ' || i,
               'generated for the calendar benchmark',
               timestamptz '2027-01-04 09:00+00' + make_interval(hours => i * 7 %% 8760),
               timestamptz '2027-01-04 10:00+00' + make_interval(hours => i * 7 %% 8760),
               'Europe/Berlin', %s, %s
        FROM generate_series(1, %s) AS i
        """,
        (user, territory, n),
    )
    await conn.execute(
        """
        INSERT INTO cal_events (owner_id, uid, kind, source_key, activity_id, summary,
            description, tz, start_at, end_at, rrule, exdates)
        SELECT a.owner_id, 'fieldmesh-' || %s || '-activity-' || a.id || '@fieldmesh', 'activity',
               'activity:' || a.id, a.id, a.subject, a.body, a.tz, a.start_at, a.end_at,
               'FREQ=WEEKLY;COUNT=12', ARRAY[a.start_at + interval '14 days']
        FROM activities a WHERE a.owner_id = %s ORDER BY a.id LIMIT %s
        """,
        (TENANT, user, recurring),
    )


def _wipe_calendar(settings: Settings, username: str, password: str) -> None:
    """The bench users' calendars from an earlier run (user ids repeat in a new database)."""
    url = f"{settings.caldav_base_url}{username}/fieldmesh/"
    requests.delete(url, auth=(username, password), timeout=LONG_TIMEOUT_S)


CLIENTS: ClientPool = ClientPool()  # replaced in main() by the one a jobs worker would keep


def _server_cpu_s(settings: Settings) -> float:
    """CPU seconds the embedded Radicale has used so far (user + system): its share of a
    phase, apart from how long a loaded machine made it wait."""
    pid = svc_caldav._pid(settings)
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(dsn: str, user: int) -> tuple[RoundStats, float]:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        stats = await sync_user(conn, user, TENANT, clients=CLIENTS)
        return stats, time.perf_counter() - t


def _naive_full_resync_s(client: CalDav, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    ch = client.changes(path, None)
    objs = client.fetch(path, [h for h, _ in ch.changed])
    n = sum(len(parse_calendar(text)) for _, _, text in objs)
    return time.perf_counter() - t, n


async def _counts(dsn: str, a: int, b: int) -> dict[str, int]:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        q = {
            "a_events": ("SELECT count(*) FROM cal_events WHERE owner_id = %s", (a,)),
            "a_uids": ("SELECT count(DISTINCT uid) FROM cal_events WHERE owner_id = %s", (a,)),
            "b_activities": ("SELECT count(*) FROM activities WHERE owner_id = %s", (b,)),
            "b_refs": (
                "SELECT count(DISTINCT source_ref) FROM activities WHERE owner_id = %s",
                (b,),
            ),
            "b_events": ("SELECT count(*) FROM cal_events WHERE owner_id = %s", (b,)),
            "b_recurring": (
                "SELECT count(*) FROM cal_events WHERE owner_id = %s AND rrule IS NOT NULL",
                (b,),
            ),
            "lost_at_b": (
                "SELECT count(*) FROM cal_events ea WHERE ea.owner_id = %s AND NOT EXISTS "
                "(SELECT 1 FROM cal_events eb WHERE eb.owner_id = %s AND eb.uid = ea.uid)",
                (a, b),
            ),
        }
        out = {}
        for k, (sql, params) in q.items():
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
            out[k] = int(row[0]) if row else 0
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 events (30 recurring)")
    ap.add_argument("--events", type=int, default=None)
    args = ap.parse_args()
    n = args.events or (300 if args.quick else 10_000)
    recurring = n // 10
    console = Console(stderr=True)

    settings = load_settings()
    global CLIENTS
    CLIENTS = ClientPool(settings=settings)
    services.stop_at_exit_if_started(settings)
    services.ensure_up(settings, migrate=False)
    name = "fm_bench_calendar"
    services.drop_database(settings, name)
    dsn = services.create_database(settings, name)
    upgrade(dsn)
    hooks.install()
    s = settings.with_overrides(database_url=dsn)

    async def setup() -> tuple[int, int, Any]:
        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute("INSERT INTO territories (name) VALUES ('bench') RETURNING id")
            row = await cur.fetchone()
            assert row is not None
            a = await _user(conn, "rep-a", int(row[0]))
            b = await _user(conn, "rep-b", int(row[0]))
            acct_a = await service.opt_in(conn, s, a)
            _wipe_calendar(settings, acct_a.username, secretbox.open_(settings, acct_a.password))
            await _seed(conn, a, int(row[0]), n, recurring)
            # B reads and writes the same calendar (a second device of the same person, or a
            # restored CRM): the back half of the trip
            await conn.execute(
                "INSERT INTO cal_accounts (user_id, server_url, username, password) "
                "VALUES (%s, %s, %s, %s)",
                (b, acct_a.server_url, acct_a.username, acct_a.password),
            )
            return a, b, acct_a

    try:
        a, b, acct_a = asyncio.run(setup())
        console.print(
            f"[bold]calendar sync[/]: {n} events ({recurring} recurring), Radicale at {settings.caldav_base_url}"
        )
        cpu0 = _server_cpu_s(settings)
        out_stats, out_s = asyncio.run(_round(dsn, a))
        cpu1 = _server_cpu_s(settings)
        console.print(
            f"out:  {out_stats.pushed} pushed ({out_stats.bulk} in one whole-calendar PUT) "
            f"in {out_s:.1f} s ({n / out_s:.0f} events/s; Radicale used {cpu1 - cpu0:.1f} s of CPU); stages "
            f"{ {k: round(v, 1) for k, v in out_stats.stage_s.items()} } s"
        )

        async def calendar_url() -> str:
            async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
                got = await account(conn, a)
                assert got is not None and got.calendar_url is not None
                await conn.execute(
                    "UPDATE cal_accounts SET calendar_url = %s WHERE user_id = %s",
                    (got.calendar_url, b),
                )
                return got.calendar_url

        path = asyncio.run(calendar_url())
        cpu2 = _server_cpu_s(settings)
        back_stats, back_s = asyncio.run(_round(dsn, b))
        cpu3 = _server_cpu_s(settings)
        console.print(
            f"back: {back_stats.pulled_new} new activities in {back_s:.1f} s ({n / back_s:.0f} events/s; "
            f"Radicale used {cpu3 - cpu2:.1f} s of CPU); "
            f"stages { {k: round(v, 1) for k, v in back_stats.stage_s.items()} } s"
        )

        async def drop_token() -> None:
            async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(
                    "UPDATE cal_accounts SET sync_token = NULL, projected_at = NULL WHERE user_id = %s",
                    (b,),
                )

        asyncio.run(drop_token())
        replay, replay_s = asyncio.run(_round(dsn, b))
        console.print(
            f"replay without a token: {replay.pulled_new} new, {replay.pushed} pushed, {replay_s:.1f} s"
        )
        asyncio.run(_round(dsn, a))  # settles A after B's round
        empty = [asyncio.run(_round(dsn, a)) for _ in range(5)]
        empty_ms = statistics.median(t for _, t in empty) * 1000
        stages = {
            k: round(statistics.median(st.stage_s.get(k, 0.0) for st, _ in empty) * 1000, 1)
            for k in ("connect", "project", "pull", "push")
        }
        console.print(
            f"empty rounds: {[round(t * 1000, 1) for _, t in empty]} ms; median by stage {stages} ms"
        )
        assert all(st.pushed == 0 and st.pulled_new == 0 for st, _ in empty), empty

        client = CalDav(
            acct_a.server_url, acct_a.username, secretbox.open_(settings, acct_a.password)
        )
        naive_s, parsed = _naive_full_resync_s(client, path)
        listing = client.changes(path, None).changed
        server_objects = len(listing)
        uids = {
            ev.uid
            for _, _, t in client.fetch(path, [h for h, _ in listing])
            for ev in parse_calendar(t)
        }
        counts = asyncio.run(_counts(dsn, a, b))
        duplicates = (
            (server_objects - len(uids))
            + (counts["a_events"] - counts["a_uids"])
            + (counts["b_activities"] - counts["b_refs"])
            + max(counts["b_events"] - n, 0)
        )
        lost = max(n - len(uids), 0) + counts["lost_at_b"] + max(n - counts["a_events"], 0)

        table = Table(title="calendar sync")
        for col in ("measure", "value"):
            table.add_column(col, justify="right")
        rows = [
            ("events (recurring)", f"{n} ({recurring})"),
            ("out: CRM -> server", f"{n / out_s:.0f} events/s ({out_s:.1f} s)"),
            ("back: server -> empty CRM", f"{n / back_s:.0f} events/s ({back_s:.1f} s)"),
            ("recurring kept at B", f"{counts['b_recurring']} / {recurring}"),
            ("empty incremental round (median of 5)", f"{empty_ms:.1f} ms"),
            ("baseline: naive full re-sync", f"{naive_s * 1000:.0f} ms ({parsed} events)"),
            ("server objects / distinct UIDs", f"{server_objects} / {len(uids)}"),
            ("duplicates", str(duplicates)),
            ("lost", str(lost)),
        ]
        for r in rows:
            table.add_row(*r)
        console.print(table)
        result: dict[str, Any] = {
            "sync_events_per_s": round(2 * n / (out_s + back_s), 1),
            "empty_sync_ms": round(empty_ms, 1),
            "duplicates": duplicates,
            "lost": lost,
            "events": n,
            "recurring": recurring,
            "out_events_per_s": round(n / out_s, 1),
            "out_bulk": out_stats.bulk,
            "out_server_cpu_s": round(cpu1 - cpu0, 1),
            "back_server_cpu_s": round(cpu3 - cpu2, 1),
            "empty_rounds_report_skipped": sum(st.report_skipped for st, _ in empty),
            "back_events_per_s": round(n / back_s, 1),
            "naive_full_resync_ms": round(naive_s * 1000, 1),
            "empty_vs_naive": round(empty_ms / (naive_s * 1000), 4),
        }
        for module, keys in PARTS:
            try:
                part = importlib.import_module(module)
            except ModuleNotFoundError:
                result.update({k: None for k in keys})
                continue
            # the booking part seeds and drops its own database on the same services
            result.update(part.measure(settings, args.quick))
        _wipe_calendar(settings, acct_a.username, secretbox.open_(settings, acct_a.password))
    finally:
        services.drop_database(settings, name)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
