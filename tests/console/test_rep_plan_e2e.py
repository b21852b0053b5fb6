"""Routing plans in the console: the manager's map draws each rep's route with its stops, the
rep's phone view orders its stops by the plan (with ETAs) and shows the automatic geofence
check-in live (recorded the way the gateway's geo stage records it)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from console.live_stage import LiveStage
from crm_sync.loop import CrmVisitHooks
from gateway.pipeline import NewMessages
from geo.engine import EventKind, GeoEvent
from geo.store import apply_visits, insert_events
from geo.visits import CheckIn
from kernel.settings import Settings
from tests.clock import clear_of
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.eventually import eventually

SITES = [(4.80, 45.74), (4.86, 45.78), (4.83, 45.72), (4.90, 45.75)]


def _check_in(dsn: str, phone: str, account_id: int, lon: float, lat: float) -> None:
    """The geo stage's writes for a dwell that becomes a visit, and the live stage's notice,
    in one transaction."""
    now_ms = int(time.time() * 1000)
    with psycopg.connect(dsn) as conn:
        insert_events(
            conn,
            [GeoEvent(phone, "9001", EventKind.DWELL, now_ms, lon, lat, now_ms - 180_000)],
            {"9001": account_id},
        )
        apply_visits(
            conn,
            [CheckIn(phone, "9001", account_id, now_ms - 180_000, now_ms)],
            CrmVisitHooks(),
        )
        LiveStage().handle(conn, NewMessages())


def _wait_plan(base: str, plan_id: int, tok: str) -> dict[str, Any]:
    def solved() -> dict[str, Any] | None:
        plan: dict[str, Any] = call(base, "GET", f"/api/v1/routing/plans/{plan_id}", token=tok)
        return plan if plan["status"] != "solving" else None

    return eventually(solved, timeout_s=120, interval_s=0.2, what=f"plan {plan_id}")


def test_the_rep_follows_the_routing_plan_and_sees_the_automatic_check_in(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    tmp_path: Path,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    dsn = test_settings.dsn
    # the plan is for the rep's today (UTC, the rep's zone), which the phone page shows:
    # the walk must not cross midnight, or the page looks at a day with no plan
    today = clear_of("day", margin_s=600.0).date()
    sfx = uuid.uuid4().hex[:6]
    phone = f"phone-{sfx}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"lyon-{sfx}",)
        ).fetchone()
        assert row is not None
        territory = int(row[0])
    rep = make_user(dsn, "rep", territory_id=territory)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE users SET home_location = ST_MakePoint(4.85, 45.76)::geography,"
            " shift_start = '00:00', shift_end = '23:59' WHERE id = %s",
            (rep["id"],),
        )
        conn.execute(
            "INSERT INTO geo_device_rep (device_id, user_id) VALUES (%s, %s)", (phone, rep["id"])
        )
        accounts, wos = [], []
        for k, (lon, lat) in enumerate(SITES):
            a = conn.execute(
                "INSERT INTO accounts (name, type, location, territory_id, owner_id)"
                " VALUES (%s, 'customer', ST_MakePoint(%s, %s)::geography, %s, %s) RETURNING id",
                (f"Site {k} {sfx}", lon, lat, territory, rep["id"]),
            ).fetchone()
            assert a is not None
            accounts.append(int(a[0]))
            # scheduled starts in the reverse of any geographic order: the plan must win
            w = conn.execute(
                "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status,"
                " estimated_duration_min, scheduled_start)"
                " VALUES (%s, %s, %s, %s, 'assigned', 20, now() + make_interval(hours => %s))"
                " RETURNING id",
                (a[0], f"Service {k}", territory, rep["id"], 8 - k),
            ).fetchone()
            assert w is not None
            wos.append(int(w[0]))
    tok = login(console_url, admin)
    created = call(
        console_url,
        "POST",
        "/api/v1/routing/plans",
        {"territory_id": territory, "date": today.isoformat(), "cpu_s": 1.0},
        tok,
    )
    plan = _wait_plan(console_url, int(created["id"]), tok)
    assert plan["status"] == "ready", plan
    (route,) = [r for r in plan["routes"] if str(r["rep_id"]) == str(rep["id"])]
    planned = [s["work_order_id"] for s in sorted(route["stops"], key=lambda s: s["seq"])]
    planned = [w for w in planned if w is not None]
    assert sorted(planned) == sorted(wos), (planned, wos)
    first_site = accounts[wos.index(planned[0])]

    ready = tmp_path / "rep-page-ready"
    done: list[bool] = []

    def check_in_when_the_page_listens() -> None:
        for _ in range(1200):
            if ready.exists():
                lon, lat = SITES[accounts.index(first_site)]
                _check_in(dsn, phone, first_site, lon, lat)
                done.append(True)
                return
            time.sleep(0.1)

    t = threading.Thread(target=check_in_when_the_page_listens, daemon=True)
    t.start()
    r = run_scenario(
        "repplan",
        console_url,
        {"user": rep, "manager": admin, "readyFile": str(ready)},
    )
    t.join(5)
    assert done
    assert r["order"] == planned, (r["order"], planned, r["texts"])
    assert all("ETA" in text for text in r["texts"]), r["texts"]
    assert r["planned"] == str(len(wos))
    assert str(rep["id"]) in {str(x["rep"]) for x in r["mapRoutes"]}
    assert r["stopMarkers"] >= len(wos)
    assert "Checked in automatically" in r["auto"] and r["checkinDisabled"] is True
    assert f"Site {SITES.index(SITES[accounts.index(first_site)])} {sfx}" in r["toastText"]
    assert r["errors"] == [] and r["bad"] == []
