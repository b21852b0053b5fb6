"""A device's page beside its charts: its alerts, its site's open work orders, the
commands sent to it from the page with the state the device's ack gives them, and a link
to its AR view."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from alerts import store as alert_store
from alerts.rules import Severity
from kernel.settings import Settings
from tests.console.test_crm_e2e import call, login


def test_a_device_page_lists_alerts_site_work_orders_and_sends_commands(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    device = f"eq-{uuid.uuid4().hex[:8]}"
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": f"Site {device}"}, tok)
    call(
        console_url,
        "POST",
        "/api/v1/work_orders",
        {"account_id": acct["id"], "title": f"Fix the pump {device}"},
        tok,
    )
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 'acme', 'equipment')",
            (device,),
        )
        conn.execute(
            "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'pump-x')",
            (acct["id"], device),
        )
        alert_store.raise_alert(
            conn,
            device,
            "temperature_high",
            Severity.WARNING,
            int(time.time() * 1000),
            message="temperature 91 above 85",
        )
    r = run_scenario("devicePage", console_url, {"user": admin, "device": device})
    assert len(r["alerts"]) == 1 and "Temperature high" in r["alerts"][0]
    assert r["workOrders"] == [f"Fix the pump {device}"]
    # which device this is, not only its model (many devices share one)
    assert r["title"] == f"{device} · pump-x"
    # the ping is listed with its state (sent until the device acks; no device runs here)
    assert r["commands"][0]["name"] == "ping" and r["commands"][0]["state"] in {
        "sent",
        "acked",
        "timed_out",
    }
    assert "sample_interval_s" in r["refused"]
    # the page makes an AR link to this equipment, which opens without signing in
    assert "/ar/s/" in r["arUrl"] and r["ar"]["status"] == 200
    assert device in r["ar"]["title"]
    # the refused config is the only refused request
    assert r["errors"] == [] and r["bad"] == [f"422 POST /api/v1/devices/{device}/commands"]


def test_a_device_page_maps_the_phones_track_over_the_chart_window_and_equipment_at_its_site(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    phone, equipment = f"ph-{uuid.uuid4().hex[:8]}", f"eq-{uuid.uuid4().hex[:8]}"
    tok = login(console_url, admin)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": f"Site {equipment}"}, tok)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE accounts SET location = st_setsrid(st_makepoint(4.85, 45.76), 4326)::geography"
            " WHERE id = %s",
            (acct["id"],),
        )
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 'acme', 'phone'),"
            " (%s, 'acme', 'equipment')",
            (phone, equipment),
        )
        conn.execute(
            "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, 'pump-x')",
            (acct["id"], equipment),
        )
        # a drive east over the last 50 minutes, one fix a minute
        conn.cursor().executemany(
            "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m, speed_mps)"
            " VALUES (%s, %s, %s, %s, 45.75, 5, 12)",
            [(now - dt.timedelta(minutes=50 - i), phone, i, 4.80 + i * 0.005) for i in range(41)],
        )
    r = run_scenario(
        "deviceMap", console_url, {"user": admin, "phone": phone, "equipment": equipment}
    )
    assert r["track"]["kind"] == "track" and r["track"]["points"] == 41
    assert "41 GPS fixes" in r["track"]["note"] and r["lines"] == 2  # the track and its newest fix
    # zoomed in on the first half of the 6 hours: no fix there, the last known position
    assert r["zoomed"]["kind"] == "last" and r["zoomed"]["window"] != r["track"]["window"]
    assert "last known position" in r["zoomed"]["note"]
    assert r["later"]["kind"] == "track" and r["later"]["points"] == 41
    assert r["site"]["kind"] == "site" and f"Site {equipment}" in r["site"]["note"]
    # no view of the page prints a null, an undefined or a NaN
    for state in ("track", "zoomed", "later", "site"):
        assert not re.search(r"\bnull\b|undefined|NaN", r[state]["text"]), r[state]["text"]
    assert r["errors"] == [] and r["bad"] == []
