"""The territory scene's devices come from assets and alerts, its route from the day's plan."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest

from ar_viewer.data import load_territory
from tests.clock import clear_of

pytestmark = pytest.mark.integration

SQUARE = {
    "type": "MultiPolygon",
    "coordinates": [[[[4.0, 45.0], [4.2, 45.0], [4.2, 45.2], [4.0, 45.2], [4.0, 45.0]]]],
}


def _seed(dsn: str, tag: str) -> None:
    # today's plan is read on the database's date (UTC), not this machine's local one
    now = clear_of("day", margin_s=60.0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        tid = conn.execute(
            "INSERT INTO territories (name, geom) VALUES (%s, ST_GeomFromGeoJSON(%s)::geography) RETURNING id",
            (f"T{tag}", json.dumps(SQUARE)),
        ).fetchone()[0]  # type: ignore[index]
        accounts = []
        for i, (lon, lat) in enumerate([(4.05, 45.05), (4.1, 45.1), (4.15, 45.15)]):
            accounts.append(
                conn.execute(
                    "INSERT INTO accounts (name, territory_id, location)"
                    " VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) RETURNING id",
                    (f"A{tag}-{i}", tid, lon, lat),
                ).fetchone()[0]  # type: ignore[index]
            )
        for i, dev in enumerate((f"{tag}-pump", f"{tag}-fan")):
            conn.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (dev,))
            conn.execute(
                "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'pump-p200')",
                (accounts[i], dev),
            )
        conn.execute(
            "INSERT INTO alerts (alert_id, device_id, alert_type, severity, state, raised_at, window_start, window_end)"
            " VALUES (%s, %s, 'vibration_high', 'critical', 'raised', %s, %s, %s)",
            (f"al-{tag}", f"{tag}-pump", now, now, now),
        )
        rep = conn.execute(
            "INSERT INTO users (email, name, role) VALUES (%s, 'Rep', 'rep') RETURNING id",
            (f"r{tag}@t.test",),
        ).fetchone()[0]  # type: ignore[index]
        plan = conn.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, status, request) VALUES (%s, %s, 'ready', '{}')"
            " RETURNING id",
            (tid, now.date()),
        ).fetchone()[0]  # type: ignore[index]
        for seq, acc in enumerate((accounts[2], accounts[0]), start=1):
            conn.execute(
                "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id, eta, service_start,"
                " service_end, wait_s, slack_s, travel_s, distance_m) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 0, 0)",
                (plan, f"v{seq}", rep, seq, acc, now, now, now),
            )


def _cleanup(dsn: str, tag: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM alerts WHERE alert_id = %s", (f"al-{tag}",))
        conn.execute(
            "DELETE FROM routing_plans WHERE territory_id IN (SELECT id FROM territories WHERE name = %s)",
            (f"T{tag}",),
        )
        conn.execute(
            "DELETE FROM accounts WHERE name LIKE %s", (f"A{tag}-%",)
        )  # cascades to assets
        conn.execute("DELETE FROM territories WHERE name = %s", (f"T{tag}",))
        conn.execute("DELETE FROM users WHERE email = %s", (f"r{tag}@t.test",))
        conn.execute("DELETE FROM device WHERE device_id LIKE %s", (f"{tag}-%",))


def test_devices_from_assets_coloured_by_active_alerts_and_route_from_todays_plan(
    db_dsn: str,
) -> None:
    tag = uuid.uuid4().hex[:8]
    _seed(db_dsn, tag)

    async def load() -> object:
        async with await psycopg.AsyncConnection.connect(db_dsn) as conn:
            return await load_territory(conn, f"T{tag}")

    try:
        territory = asyncio.run(load())
    finally:
        _cleanup(db_dsn, tag)  # other tests (the console's live map) read the same tables
    states = {d.id: d.alert_state for d in territory.devices}  # type: ignore[attr-defined]
    assert states[f"{tag}-pump"] == "critical"
    assert states[f"{tag}-fan"] in ("unknown", "ok")
    assert territory.route == ((4.15, 45.15), (4.05, 45.05))  # type: ignore[attr-defined]
