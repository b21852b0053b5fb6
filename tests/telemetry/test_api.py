"""Telemetry endpoints through the real app and database: series are bucketed server-side."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fieldmesh.app import build_app
from identity.auth import create_user, issue_token
from kernel.settings import Settings

pytestmark = pytest.mark.integration


async def _token(dsn: str, role: str) -> str:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        uid = await create_user(
            conn, email=f"{role}{uuid.uuid4().hex[:8]}@tel.test", name=role, role=role
        )
        return (await issue_token(conn, uid))[1]


def _seed(dsn: str, device: str, start: datetime) -> None:
    """One sample a minute for two hours: value = minute index."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (device,))
        with conn.cursor().copy(
            "COPY telemetry_sample (time, device_id, metric, value, seq) FROM STDIN"
        ) as copy:
            for i in range(120):
                copy.write_row(
                    (start + timedelta(minutes=i), device, "temperature_c", float(i), i // 10)
                )
        conn.execute(
            "INSERT INTO telemetry_latest VALUES (%s, 'temperature_c', %s, 119.0)",
            (device, start + timedelta(minutes=119)),
        )


def test_series_latest_and_errors(test_settings: Settings, db_dsn: str) -> None:
    asyncio.run(_scenario(test_settings, db_dsn))


async def _scenario(settings: Settings, dsn: str) -> None:
    device = f"dev-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    _seed(dsn, device, start)
    viewer = {"Authorization": f"Bearer {await _token(dsn, 'viewer')}"}
    manager = {"Authorization": f"Bearer {await _token(dsn, 'manager')}"}
    client = TestClient(TestServer(build_app(settings, ("telemetry.routes",))))
    await client.start_server()
    try:
        q = {
            "metric": "temperature_c",
            "from": start.isoformat(),
            "to": (start + timedelta(hours=2)).isoformat(),
            "bucket_s": "1800",
        }
        r = await client.get(f"/api/v1/devices/{device}/telemetry", params=q, headers=viewer)
        assert r.status == 200
        body = await r.json()
        assert body["bucket_s"] == 1800
        assert [(b["n"], b["min"], b["max"], b["avg"]) for b in body["buckets"]] == [
            (30, 0.0, 29.0, 14.5),
            (30, 30.0, 59.0, 44.5),
            (30, 60.0, 89.0, 74.5),
            (30, 90.0, 119.0, 104.5),
        ]
        # without a bucket, one is chosen so that a year never becomes millions of points
        r = await client.get(
            f"/api/v1/devices/{device}/telemetry",
            headers=viewer,
            params={"metric": "temperature_c", "from": (start - timedelta(days=365)).isoformat()},
        )
        body = await r.json()
        assert r.status == 200 and body["bucket_s"] >= 3600 and len(body["buckets"]) <= 2000
        assert sum(b["n"] for b in body["buckets"]) == 120

        r = await client.get(f"/api/v1/devices/{device}", headers=viewer)
        assert (await r.json())["latest"]["temperature_c"]["value"] == 119.0

        # bad input: 422 with the field named, 401 without a token, 404 unknown device, 403 for dead letters
        r = await client.get(
            f"/api/v1/devices/{device}/telemetry",
            params={
                "metric": "t",
                "bucket_s": "1",
                "from": (start - timedelta(days=30)).isoformat(),
            },
            headers=viewer,
        )
        assert r.status == 422 and (await r.json())["error"]["field"] == "bucket_s"
        r = await client.get(
            f"/api/v1/devices/{device}/telemetry",
            params={"metric": "t", "from": "yesterday"},
            headers=viewer,
        )
        assert r.status == 422 and (await r.json())["error"]["field"] == "from"
        r = await client.get(f"/api/v1/devices/{device}/telemetry", params={"metric": "t"})
        assert r.status == 401 and "error" in await r.json()
        r = await client.get("/api/v1/devices/no-such-device", headers=viewer)
        assert r.status == 404
        r = await client.get("/api/v1/dead-letters", headers=viewer)
        assert r.status == 403
        r = await client.get("/api/v1/dead-letters", headers=manager)
        assert r.status == 200 and "items" in await r.json()
        r = await client.get(
            "/api/v1/devices", params={"kind": "equipment", "limit": "1000"}, headers=viewer
        )
        assert device in [d["device_id"] for d in (await r.json())["items"]]
    finally:
        await client.close()


def test_gateway_creates_partitions_ahead(db_dsn: str) -> None:
    from telemetry.schema import PARTITION_SPAN, ensure_partitions, week_start

    far = week_start(datetime.now(UTC)) + 12 * PARTITION_SPAN
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert ensure_partitions(conn, weeks_ahead=12) >= 2  # the migration made 8 weeks ahead
        assert ensure_partitions(conn, weeks_ahead=12) == 0  # idempotent
        row = conn.execute(
            "SELECT 1 FROM pg_class WHERE relname = %s", (f"telemetry_sample_p{far:%Y%m%d}",)
        ).fetchone()
    assert row is not None
