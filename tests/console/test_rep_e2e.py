"""The rep's phone view in headless Chromium: a visit completed offline arrives exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login


def test_a_visit_completed_offline_arrives_once_when_back_online(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    rep = make_user(test_settings.dsn, "rep")
    tok = login(console_url, admin)
    acct = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {
            "name": "Offline Bakery",
            "owner_id": rep["id"],
            "address": "1 rue du Four, Lyon",
            "location": {"type": "Point", "coordinates": [4.84, 45.76]},
        },
        tok,
    )
    wo = call(
        console_url,
        "POST",
        "/api/v1/work_orders",
        {"account_id": acct["id"], "title": "Oven seal check", "assignee_id": rep["id"]},
        tok,
    )
    idle = make_user(test_settings.dsn, "rep")
    r = run_scenario("offline", console_url, {"user": rep, "idle": idle})
    assert any("Offline Bakery" in s and "Oven seal check" in s for s in r["offlineStops"]), r
    # the parts a stop does not have yet are left out, not printed as "null"
    assert "Next: Offline Bakery" in r["nextStop"] and "null" not in r["nextStop"]
    # a rep with no stops at all is told so, not "All stops done"
    assert r["idleNext"].startswith("No stops today"), r["idleNext"]
    assert r["intercepted"] == 1  # one answer was lost on the way back
    with psycopg.connect(test_settings.dsn) as conn:
        subjects = [
            s
            for (s,) in conn.execute(
                "SELECT subject FROM activities WHERE work_order_id = %s AND source = 'rep_app' ORDER BY id",
                (wo["id"],),
            )
        ]
        status = conn.execute(
            "SELECT status FROM work_orders WHERE id = %s", (wo["id"],)
        ).fetchone()
    assert subjects == [
        "Check-in: Oven seal check",
        "Visit note",
        "Work order completed: Oven seal check",
    ]
    assert status is not None and status[0] == "done"
    assert r["errors"] == []
