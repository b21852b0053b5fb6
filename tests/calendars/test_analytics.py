"""Calendar analytics from real rows: meeting load, on site and driving from visits and
the plan in force, no-show and reschedule rates."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import psycopg
import requests

from kernel.settings import Settings
from tests.calendars.calworld import make_world


def test_meeting_load_site_driving_no_show_and_reschedule_rates(
    app_url: str, test_settings: Settings
) -> None:
    world = make_world(test_settings.dsn)
    rep = world.users["utc"]
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday() + 7)  # last week's Monday: all in the past
    day = datetime.combine(monday, time(0), tzinfo=UTC)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        ids = []
        for hour in (9, 11, 14, 16):
            row = conn.execute(
                "INSERT INTO activities (type, subject, start_at, end_at, owner_id, territory_id)"
                " VALUES ('meeting', 'm', %s, %s, %s, %s) RETURNING id",
                (
                    day + timedelta(hours=hour),
                    day + timedelta(hours=hour + 1),
                    rep,
                    world.territory,
                ),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        plan = conn.execute(
            "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
            " VALUES (%s, %s, 'ready', '{}') RETURNING id",
            (world.territory, monday),
        ).fetchone()
        assert plan is not None
        conn.execute(
            "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id, eta,"
            " service_start, service_end, wait_s, slack_s, travel_s, distance_m)"
            " VALUES (%s, 'a', %s, 1, %s, %s, %s, %s, 0, 0, 1800, 20000)",
            (plan[0], rep, world.accounts["paris"], day + timedelta(hours=12),
             day + timedelta(hours=12), day + timedelta(hours=13)),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at,"
            " checked_in_at, departed_at, status) VALUES ('phone-x', 1, %s, %s, %s, %s, %s, 'completed')",
            (world.accounts["paris"], rep, day + timedelta(hours=12), day + timedelta(hours=12),
             day + timedelta(hours=13, minutes=30)),
        )  # fmt: skip
    auth = world.h("manager")
    base = f"{app_url}/api/v1/calendar"
    # one meeting moved (through the calendar), one a no-show, one attended
    r = requests.patch(f"{base}/meetings/{ids[3]}", json={
        "start": (day + timedelta(hours=15)).isoformat(), "end": (day + timedelta(hours=16)).isoformat()},
        headers=auth, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    for aid, outcome in ((ids[0], "no_show"), (ids[1], "attended")):
        r = requests.put(
            f"{base}/meetings/{aid}/attendance", json={"outcome": outcome}, headers=auth, timeout=30
        )
        assert r.status_code == 200, r.text
    r = requests.get(f"{base}/analytics", params={
        "start": day.isoformat(), "end": (day + timedelta(days=7)).isoformat(), "user_ids": str(rep)},
        headers=auth, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    (u,) = r.json()["users"]
    assert u["meetings"] == 4 and u["meeting_h"] == 4.0
    assert u["working_h"] == 40.0  # 09:00-17:00 UTC, Monday to Friday
    assert u["meeting_load"] == 0.1
    assert u["on_site_h"] == 1.5 and u["planned_on_site_h"] == 1.0 and u["driving_h"] == 0.5
    assert (u["marked"], u["no_shows"], u["no_show_rate"]) == (2, 1, 0.5)
    assert (u["rescheduled"], u["reschedule_rate"]) == (1, 0.25)
    # someone else's calendar is not the outsider's to see
    r = requests.get(f"{base}/analytics", params={
        "start": day.isoformat(), "end": (day + timedelta(days=7)).isoformat(), "user_ids": str(rep)},
        headers=world.h("outsider"), timeout=30)  # fmt: skip
    assert r.status_code == 404
