"""The rep's day: every planned stop in plan order (visits and work orders), then open work
orders the plan does not carry; what the rep records at a stop, idempotently."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from phone.day import Assigned, PlannedStop, merge_day, work_order_type
from tests.world import People, make_people

T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def test_the_day_lists_every_planned_stop_not_only_assigned_work_orders() -> None:
    # nine stops: six periodic account visits and three work orders, of which only one is
    # assigned to the rep (the bug: the list showed that one)
    planned = [
        PlannedStop(f"k{i}", i, 100 + i, 500 + i if i % 3 == 0 else None, T0, T0)
        for i in range(9, 0, -1)
    ]
    assigned = [
        Assigned(503, 103, None, None),  # also planned: listed once, at its plan position
        Assigned(900, 200, T0 + timedelta(hours=3), None),
        Assigned(901, 201, T0 + timedelta(hours=1), None),
    ]
    day = merge_day(planned, assigned)
    assert [s.seq for s in day[:9]] == list(range(1, 10))
    assert [s.key for s in day[9:]] == ["wo:901", "wo:900"]
    assert sum(1 for s in day if s.work_order_id is None) == 6
    assert len({s.key for s in day}) == len(day) == 11


def test_work_order_types_pick_the_checklist() -> None:
    assert work_order_type("alert", {}) == "repair"
    assert work_order_type("manual", {"type": "installation"}) == "installation"
    assert work_order_type("manual", {"type": "<script>"}) == "service"


def _seed_plan(dsn: str, people: People, day: date) -> tuple[list[int], list[int], int]:
    rep = people.users["rep1"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        accts = [
            int(
                conn.execute(
                    "INSERT INTO accounts (name, type, location, territory_id)"
                    " VALUES (%s, 'customer', ST_MakePoint(4.8, 45.7)::geography, %s) RETURNING id",
                    (f"Day site {i} {people.suffix}", people.t1),
                ).fetchone()[0]  # type: ignore[index]
            )
            for i in range(9)
        ]
        wos = []
        for i, assignee in ((0, rep), (3, None), (6, people.users["rep2"])):
            wos.append(
                int(
                    conn.execute(
                        "INSERT INTO work_orders (account_id, title, territory_id, assignee_id,"
                        " status, source) VALUES (%s, %s, %s, %s, %s, 'alert') RETURNING id",
                        (
                            accts[i],
                            f"Fix {i}",
                            people.t1,
                            assignee,
                            "assigned" if assignee else "new",
                        ),
                    ).fetchone()[0]  # type: ignore[index]
                )
            )
        extra = int(
            conn.execute(
                "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status)"
                " VALUES (%s, 'Extra', %s, %s, 'assigned') RETURNING id",
                (accts[1], people.t1, rep),
            ).fetchone()[0]  # type: ignore[index]
        )
        plan = int(
            conn.execute(
                "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
                " VALUES (%s, %s, 'ready', '{}') RETURNING id",
                (people.t1, day),
            ).fetchone()[0]  # type: ignore[index]
        )
        order = [8, 0, 5, 3, 1, 7, 6, 2, 4]  # the plan's order, not the accounts'
        for seq, i in enumerate(order, start=1):
            wo = wos[[0, 3, 6].index(i)] if i in (0, 3, 6) else None
            at = T0 + timedelta(minutes=40 * seq)
            conn.execute(
                "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id,"
                " work_order_id, eta, service_start, service_end, wait_s, slack_s, travel_s,"
                " distance_m) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, 600, 5000)",
                (plan, f"v{i}", rep, seq, accts[i], wo, at, at, at + timedelta(minutes=30)),
            )
    return [accts[i] for i in order], wos, extra


def test_the_day_api_follows_the_plan_and_records_the_work(
    app_url: str, people: People, db_dsn: str
) -> None:
    day = date(2026, 1, 15)  # not today: other tests list the day's plans
    order, wos, extra = _seed_plan(db_dsn, people, day)
    rep = people.api(app_url, "rep1")
    r = rep.get(f"/phone/day?date={day}")
    assert r.status_code == 200, r.text
    body = r.json()
    stops = body["stops"]
    assert [s["account"]["id"] for s in stops[:9]] == order
    assert [s["seq"] for s in stops[:9]] == list(range(1, 10))
    # then the rep's unplanned open work orders (other tests of the session may add theirs)
    unplanned = stops[9:]
    assert all(s["seq"] is None for s in unplanned)
    assert extra in [s["work_order"]["id"] for s in unplanned if s["work_order"]]
    mine = {*wos, extra}
    assert sum(1 for s in stops if s["work_order"] and s["work_order"]["id"] in mine) == 4
    assert all(s["navigate_url"].startswith("geo:45.7") for s in stops[:9])
    wo_stop = next(s for s in stops if s["work_order"] and s["work_order"]["id"] == wos[0])
    assert wo_stop["work_order"]["type"] == "repair"
    items = [c["item"] for c in wo_stop["checklist"]]
    assert items and not any(c["done"] for c in wo_stop["checklist"])

    key = wo_stop["key"]
    cin = "2026-01-15T09:00:00+00:00"
    path = f"/phone/day/stops/{key}?date={day}"
    assert rep.post(path, json={"checkin_at": cin}).status_code == 200
    # a replayed check-in (offline queue) changes nothing
    assert rep.post(path, json={"checkin_at": "2026-01-15T09:05:00+00:00"}).status_code == 200
    r = rep.post(
        path,
        json={
            "checklist": {items[0]: True},
            "parts": [{"name": "Seal kit", "qty": 2, "sku": "SK-2"}],
            "checkout_at": "2026-01-15T09:45:00+00:00",
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["checkin_at"].startswith("2026-01-15T09:00") and out["checkin_source"] == "manual"
    assert out["time_spent_s"] == 45 * 60
    assert out["checklist"][0] == {"item": items[0], "done": True}
    assert out["parts"] == [{"name": "Seal kit", "qty": 2, "sku": "SK-2"}]

    bad = rep.post(path, json={"checklist": {"Not an item": True}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "checklist"
    early = rep.post(path, json={"checkout_at": "2026-01-15T08:00:00+00:00"})
    assert early.status_code == 422
    naive = rep.post(path, json={"checkin_at": "2026-01-15T09:00:00"})
    assert naive.status_code == 422
    # another rep has no such stop
    other = people.api(app_url, "rep2").post(path, json={"completed": True})
    assert other.status_code == 404
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT parts FROM phone_stop_work WHERE user_id = %s AND stop_key = %s",
            (people.users["rep1"], key),
        ).fetchone()
    assert row is not None and json.loads(json.dumps(row[0]))[0]["name"] == "Seal kit"


def test_without_a_date_the_day_is_today_in_the_reps_time_zone(app_url: str, db_dsn: str) -> None:
    people = asyncio.run(make_people(db_dsn, uuid.uuid4().hex[:8]))  # a rep of this test alone
    now = datetime.now(UTC)
    # a zone whose date is not UTC's now, with its midnight at least two hours away:
    # UTC+14 from 10:00 UTC (its midnight), UTC-12 before 12:00 UTC (its midnight)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"
    local = now.astimezone(ZoneInfo(zone)).date()
    assert local != now.date()
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET timezone = %s WHERE id = %s", (zone, people.users["rep1"]))
    order, _, _ = _seed_plan(db_dsn, people, local)
    rep = people.api(app_url, "rep1")
    r = rep.get("/phone/day")
    assert r.status_code == 200, r.text
    assert r.json()["date"] == local.isoformat()
    stops = r.json()["stops"]
    assert [s["account"]["id"] for s in stops[:9]] == order
    # a stop of that day is recorded without naming the day as well
    visit = next(s for s in stops[:9] if s["work_order"] is None)
    done = rep.post(f"/phone/day/stops/{visit['key']}", json={"completed": True})
    assert done.status_code == 200, done.text
