"""The closed loop end to end against the real broker, gateway subprocess and database:
a simulated pump wears out -> one alert -> one urgent work order -> re-plan -> `route`
command on the assignee's phone -> the phone drives there -> geofence check-in and
check-out -> the visit and the work order's steps on the account's timeline.

The test has its own database (the rules are global per equipment model, so exact counts
need a world of its own) and runs the simulation 600x faster than real time.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerts import store as alert_store
from crm_sync.dispatch import dispatch_pending
from crm_sync.loop import CrmVisitHooks
from crm_sync.workorders import open_work_order
from fieldmesh import services
from fieldmesh.closed_loop import Dispatcher, loop_steps
from fieldmesh.demo_world import morning_lead_s, seed_world
from fieldmesh.migrate import upgrade
from firmware_sim.fleet import Fleet, FleetSpec
from geo.store import apply_visits
from geo.visits import CheckIn, CheckOut
from kernel.settings import Settings
from tests.gateway.harness import GatewayProcess

SPEEDUP = 600.0
LOOP_DEADLINE_S = 240.0  # a generous bound on waiting, not an assertion on speed


@pytest.fixture
def loop_settings(services_up: Settings) -> Iterator[Settings]:
    name = f"fm_loop_{uuid.uuid4().hex[:8]}"
    dsn = services.create_database(services_up, name)
    upgrade(dsn)
    yield services_up.with_overrides(database_url=dsn)
    services.drop_database(services_up, name)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[Settings, str], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(settings: Settings, tenant: str) -> GatewayProcess:
        gw = GatewayProcess(settings, tenant, "loop", log_path=tmp_path / "gateway.log")
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


def _count(conn: psycopg.Connection[Any], sql: str, *params: Any) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def test_worn_pump_becomes_a_planned_visit_that_closes_its_work_order(
    loop_settings: Settings,
    tenant: str,
    start_gateway: Callable[[Settings, str], GatewayProcess],
    tmp_path: Path,
) -> None:
    settings = loop_settings
    spec = FleetSpec(
        tenant=tenant,
        devices=4,
        reps=2,
        speedup=SPEEDUP,
        seed=11,
        radius_m=4_000.0,
        failure_probability=0.0,
        # fault from 2 s of real time, failure at 14 s: the vibration rule fires in between
        forced_failure_s=(2 * SPEEDUP, 14 * SPEEDUP),
        lead_s=morning_lead_s(time.time(), 300 * SPEEDUP),
    )
    fleet = Fleet(settings, spec, tmp_path / "fleet")
    fleet.register(settings.dsn)
    with psycopg.connect(settings.dsn) as conn:
        world = seed_world(conn, fleet)
    pump = fleet.equipment()[0][0]
    account_id = world.account_of_device[pump]
    # the reps work in the zone where the world is (Lyon), and are dispatched on its day
    with psycopg.connect(settings.dsn) as conn:
        zones = conn.execute(
            "SELECT DISTINCT timezone FROM users WHERE id = ANY(%s)", (list(world.reps.values()),)
        ).fetchall()
    assert world.timezone == "Europe/Paris" and zones == [("Europe/Paris",)]
    # the sites keep their money in the currency of the demo's deals
    with psycopg.connect(settings.dsn) as conn:
        currencies = conn.execute(
            "SELECT DISTINCT currency FROM accounts WHERE id = ANY(%s)",
            (list(world.accounts.values()),),
        ).fetchall()
        default = conn.execute("SELECT default_currency FROM tenant_settings").fetchone()
    assert currencies == [("EUR",)]
    # and the tenant works in it: a record made without a currency is in EUR, not USD
    assert default == ("EUR",)
    gateway = start_gateway(settings, tenant)
    dispatcher = Dispatcher(settings, tenant, fleet.clock.now_s, cpu_s=0.5).start()
    fleet.start()
    steps: list[str] = []
    try:
        deadline = time.monotonic() + LOOP_DEADLINE_S
        while time.monotonic() < deadline:
            with psycopg.connect(settings.dsn) as conn:
                steps = [s.key for s in loop_steps(conn, pump, world.last_visit_id)]
            if steps and steps[-1] == "done":
                break
            assert gateway.proc is not None and gateway.proc.poll() is None, "gateway exited"
            assert dispatcher.alive(), "dispatcher thread died"
            time.sleep(0.5)
    finally:
        fleet.stop()
        dispatcher.stop()
        gateway.stop()
    assert steps == [
        "alert",
        "work_order",
        "plan",
        "en_route",
        "check_in",
        "visit_logged",
        "done",
    ], f"the loop stopped after {steps}"

    with psycopg.connect(settings.dsn) as conn:
        # one alert, one work order on the pump's account, urgent, done by its assignee
        assert _count(conn, "SELECT count(*) FROM alerts WHERE device_id = %s", pump) == 1
        alert_row = conn.execute(
            f"SELECT {alert_store._COLUMNS} FROM alerts WHERE device_id = %s", (pump,)
        ).fetchone()
        assert alert_row is not None
        alert = alert_store.alert_from_row(alert_row)
        wos = conn.execute(
            "SELECT id, priority, status, assignee_id, scheduled_start, completed_at"
            " FROM work_orders WHERE account_id = %s AND source = 'alert'",
            (account_id,),
        ).fetchall()
        assert len(wos) == 1
        wo_id, priority, status, rep_id, scheduled_start, completed_at = wos[0]
        assert (priority, status) == ("urgent", "done")
        assert rep_id in world.reps.values()
        assert scheduled_start is not None and completed_at is not None
        phone = next(d for d, u in world.reps.items() if u == rep_id)

        # the plan changed for that rep, once, and the route reached the rep's phone
        assert [(d.work_order_id, d.rep_id) for d in dispatcher.dispatched] == [(wo_id, rep_id)]
        assert f"wo:{wo_id}" in dispatcher.dispatched[0].after
        assert (
            _count(
                conn,
                "SELECT count(*) FROM routing_stops WHERE visit_key = %s AND rep_id = %s",
                f"wo:{wo_id}",
                rep_id,
            )
            == 1
        )
        assert (
            _count(
                conn,
                "SELECT count(*) FROM command_ack WHERE device_id = %s AND name = 'route' AND ok",
                phone,
            )
            == 1
        )
        navigator = dict(fleet.phones())[phone]
        assert [r.visit_ids for r in navigator.routes()] == [(f"wo:{wo_id}",)]

        # one visit of that rep closed the work order: checked in, checked out, logged (the
        # rep's ordinary tour may have passed this site earlier the same day: not that one)
        visits = conn.execute(
            "SELECT id, checked_in_at, departed_at, status, activity_id FROM visits"
            " WHERE account_id = %s AND rep_id = %s AND departed_at = %s",
            (account_id, rep_id, completed_at),
        ).fetchall()
        assert len(visits) == 1
        visit_id, checked_in_at, departed_at, vstatus, activity_id = visits[0]
        assert vstatus == "completed" and activity_id is not None
        assert checked_in_at < departed_at <= completed_at

        # the timeline: opened, planned, visited, completed -- each once
        timeline = {
            (src, ref): n
            for src, ref, n in conn.execute(
                "SELECT source, source_ref, count(*) FROM activities WHERE account_id = %s"
                " GROUP BY source, source_ref",
                (account_id,),
            ).fetchall()
        }
        plan_id = dispatcher.dispatched[0].plan_id
        assert timeline[("crm_sync", f"alert:{alert.alert_id}:work_order")] == 1
        assert timeline[("crm_sync", f"work_order:{wo_id}:plan:{plan_id}")] == 1
        assert timeline[("geo", f"visit:{visit_id}")] == 1
        assert timeline[("crm_sync", f"visit:{visit_id}:work_order:{wo_id}")] == 1
        # the planned note names the rep, and the visit's times read in UTC to the second
        texts: dict[str, str] = dict(
            conn.execute(
                "SELECT source_ref, subject || E'\\n' || coalesce(body, '') FROM activities"
                " WHERE source_ref IN (%s, %s)",
                (f"work_order:{wo_id}:plan:{plan_id}", f"visit:{visit_id}"),
            ).fetchall()
        )
        rep_name = conn.execute("SELECT name FROM users WHERE id = %s", (rep_id,)).fetchone()
        assert rep_name is not None and rep_name[0]
        planned = texts[f"work_order:{wo_id}:plan:{plan_id}"]
        assert f"planned: {rep_name[0]} on site at " in planned
        assert re.search(
            r"\nArrival \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", texts[f"visit:{visit_id}"]
        )

        # redelivery changes nothing: the alert again, the check-in/out again, the dispatcher again
        again = open_work_order(conn, alert, now=datetime.now(UTC))
        assert again is not None and (again.work_order_id, again.created) == (wo_id, False)
        visit = conn.execute(
            "SELECT subject_id, fence_id, arrived_at, checked_in_at, departed_at FROM visits"
            " WHERE id = %s",
            (visit_id,),
        ).fetchone()
        assert visit is not None
        subject, fence, arrived, checked_in, departed = visit

        def ms(t: datetime) -> int:
            return int(t.timestamp() * 1000)

        apply_visits(
            conn,
            [
                CheckIn(subject, str(fence), account_id, ms(arrived), ms(checked_in)),
                CheckOut(subject, str(fence), account_id, ms(arrived), ms(departed)),
            ],
            CrmVisitHooks(),
        )
        conn.commit()
        assert (
            _count(conn, "SELECT count(*) FROM work_orders WHERE account_id = %s", account_id) == 1
        )
        assert (
            _count(
                conn,
                "SELECT count(*) FROM visits WHERE id >= %s AND account_id = %s AND rep_id = %s",
                visit_id,
                account_id,
                rep_id,
            )
            == 1
        )
        assert _count(
            conn, "SELECT count(*) FROM activities WHERE account_id = %s", account_id
        ) == sum(timeline.values())
    sent: list[str] = []

    async def redispatch() -> int:
        async with await psycopg.AsyncConnection.connect(settings.dsn) as aconn:
            done = await dispatch_pending(
                aconn, now=datetime.now(UTC), send=lambda d, _a: sent.append(d)
            )
            return len(done)

    assert asyncio.run(redispatch()) == 0 and sent == []
