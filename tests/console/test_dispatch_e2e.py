"""The dispatch board: reps as lanes by name, SLA breaches marked, reassignment by drag and
drop saved through the API; planning offered to managers only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory


def test_a_dispatcher_reassigns_a_late_work_order_to_a_rep(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tid = territory(test_settings.dsn)
    manager = make_user(test_settings.dsn, "manager", territory_id=tid)
    ann = make_user(test_settings.dsn, "rep", territory_id=tid)
    bob = make_user(test_settings.dsn, "rep", territory_id=tid)
    tok = login(console_url, admin)
    acct = call(
        console_url, "POST", "/api/v1/accounts", {"name": "Dispatch SA", "territory_id": tid}, tok
    )
    late = call(
        console_url,
        "POST",
        "/api/v1/work_orders",
        {
            "account_id": acct["id"],
            "title": "Leaking valve",
            "priority": "urgent",
            "sla_due_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat(),
        },
        tok,
    )
    r = run_scenario(
        "dispatch", console_url, {"user": manager, "late": late["id"], "toRep": bob["id"]}
    )
    assert r["lanes"][0] == "Unassigned" and {ann["email"][:6], bob["email"][:6]} <= {
        lane.split()[-1] for lane in r["lanes"]
    }
    assert r["breach"] == "true" and r["slaText"].startswith("SLA breached 2 h")
    assert r["planOffered"] and r["status"] == 200
    wo = call(console_url, "GET", f"/api/v1/work_orders/{late['id']}", token=tok)
    assert wo["assignee_id"] == bob["id"] and wo["status"] == "assigned"
    assert r["errors"] == [] and r["bad"] == [], r["bad"]
    as_rep = run_scenario(
        "dispatch", console_url, {"user": bob, "late": late["id"], "toRep": ann["id"]}
    )
    assert not as_rep["planOffered"]
