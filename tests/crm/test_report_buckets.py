"""Time buckets of a grouped report are dates in the session's time zone, as the
timestamptz date_trunc of that session would give (real database)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection

from crm.reports import ReportDefinition, run_report
from kernel.principal import Principal

ADMIN = Principal(1, "admin@x.test", "admin", None, (1,), ())
# instants near month ends: UTC, Auckland (UTC+13 in January) and Honolulu (UTC-10) put
# them in different months
INSTANTS = ["2026-01-31 12:00+00", "2026-02-28 22:30+00", "2026-03-01 05:00+00"]


def test_month_buckets_follow_the_sessions_time_zone(db_dsn: str) -> None:
    tag = uuid.uuid4().hex[:10]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for at in INSTANTS:
            conn.execute(
                "INSERT INTO activities (type, subject, start_at) VALUES ('call', %s, %s)",
                (f"bucket {tag}", at),
            )
    definition = msgspec.convert(
        {
            "entity": "activities",
            "filter": {"field": "subject", "op": "contains", "value": tag},
            "group_by": [{"field": "occurred_at", "bucket": "month"}],
        },
        ReportDefinition,
    )

    async def go(zone: str) -> tuple[list[Any], list[Any]]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            await conn.execute(f"SET TimeZone = '{zone}'")
            result = await run_report(conn, ADMIN, definition)
            cur = await conn.execute(
                "SELECT date_trunc('month', start_at)::date::text, count(*)::float8"
                " FROM activities WHERE subject = %s GROUP BY 1 ORDER BY 1",
                (f"bucket {tag}",),
            )
            return [[r[0], float(r[1])] for r in result.rows], [
                list(r) for r in await cur.fetchall()
            ]

    seen = {}
    for zone in ("UTC", "Pacific/Auckland", "Pacific/Honolulu"):
        got, expected = asyncio.run(go(zone))
        assert got == expected, zone
        seen[zone] = got
    assert seen["UTC"] == [["2026-01-01", 1.0], ["2026-02-01", 1.0], ["2026-03-01", 1.0]]
    assert seen["Pacific/Auckland"] == [["2026-02-01", 1.0], ["2026-03-01", 2.0]]
    assert seen["Pacific/Honolulu"] == [["2026-01-01", 1.0], ["2026-02-01", 2.0]]
