"""A device's page beside its charts: its alerts, its site's open work orders, and the
commands sent to it from the page with the state the device's ack gives them."""

from __future__ import annotations

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
    assert len(r["alerts"]) == 1 and "temperature high" in r["alerts"][0]
    assert r["workOrders"] == [f"Fix the pump {device}"]
    # the ping is listed with its state (sent until the device acks; no device runs here)
    assert r["commands"][0]["name"] == "ping" and r["commands"][0]["state"] in {
        "sent",
        "acked",
        "timed_out",
    }
    assert "sample_interval_s" in r["refused"]
    # the refused config is the only refused request
    assert r["errors"] == [] and r["bad"] == [f"422 POST /api/v1/devices/{device}/commands"]
