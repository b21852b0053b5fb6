"""Technician utilisation and travel vs on-site time, on a generated rep day: the phone's
stop work, geofence visits from the rep's GPS, a routed plan and a GPS track whose moving
and on-site times are known by construction."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import psycopg
import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import login
from tests.console.test_kpis_api import kpi
from tests.console.test_records_e2e import territory

PARIS = dt.timezone(dt.timedelta(hours=2))  # Europe/Paris in June (summer time)
DAY1, DAY2 = dt.date(2026, 6, 10), dt.date(2026, 6, 11)
JUNE = {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z"}
SPEED_MPS = 10.0
M_PER_DEG_LON = 111_320 * math.cos(math.radians(48.85))


def local(day: dt.date, hhmm: str) -> dt.datetime:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), tzinfo=PARIS)


def track(
    start: dt.datetime, legs: list[tuple[str, int]]
) -> list[tuple[dt.datetime, float, float | None]]:
    """Fixes every 10 s: ('move', minutes) drives east at SPEED_MPS, ('stay', minutes) stands
    still; every other fix carries no speed (the KPI then derives it from the distance)."""
    t, lon = start, 2.30
    out: list[tuple[dt.datetime, float, float | None]] = [(t, lon, 0.0)]
    for kind, minutes in legs:
        for _ in range(minutes * 6):
            t += dt.timedelta(seconds=10)
            moving = kind == "move"
            lon += SPEED_MPS * 10 / M_PER_DEG_LON if moving else 0.0
            speed = (SPEED_MPS if moving else 0.0) if len(out) % 2 else None
            out.append((t, lon, speed))
    return out


@pytest.fixture
def rep_days(test_settings: Settings) -> dict[str, Any]:
    """Day 1: three stops (phone only; phone and geofence overlapping; geofence only), 130 min
    of driving on GPS; day 2: a routed plan, nothing done. Another rep elsewhere."""
    tid = territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=tid)
    other = make_user(test_settings.dsn, "rep", territory_id=territory(test_settings.dsn))
    phone = f"phone-kpi-{rep['id']}"
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:

        def one(q: str, *p: Any) -> Any:
            row = conn.execute(q, p).fetchone()
            assert row is not None
            return row[0]

        for u in (rep, other):
            conn.execute(
                "UPDATE users SET timezone = 'Europe/Paris', shift_start = '08:00',"
                " shift_end = '17:00' WHERE id = %s",
                (u["id"],),
            )
        # a zone name the database does not know reads as UTC (the other rep's day is the same)
        conn.execute("UPDATE users SET timezone = 'Nowhere/Atlantis' WHERE id = %s", (other["id"],))
        acct = one(
            "INSERT INTO accounts (name, territory_id) VALUES ('Site', %s) RETURNING id", tid
        )
        for key, start, end in (("acct:1", "09:00", "10:00"), ("acct:2", "11:00", "11:30")):
            conn.execute(
                "INSERT INTO phone_stop_work (user_id, day, stop_key, account_id, checkin_at,"
                " checkout_at, completed) VALUES (%s, %s, %s, %s, %s, %s, true)",
                (rep["id"], DAY1, key, acct, local(DAY1, start), local(DAY1, end)),
            )
        # the phone left open (no check-out) counts for nothing
        conn.execute(
            "INSERT INTO phone_stop_work (user_id, day, stop_key, account_id, checkin_at)"
            " VALUES (%s, %s, 'acct:3', %s, %s)",
            (rep["id"], DAY1, acct, local(DAY1, "16:00")),
        )
        for who, start, end in (
            (rep, "10:50", "11:40"),  # overlaps the phone's 11:00-11:30: counted once
            (rep, "14:00", "15:00"),
            (other, "09:00", "13:00"),
        ):
            conn.execute(
                "INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at,"
                " checked_in_at, departed_at, status) VALUES (%s, 1, %s, %s, %s, %s, %s,"
                " 'completed')",
                (
                    f"rep:{who['id']}",
                    acct,
                    who["id"],
                    local(DAY1, start),
                    local(DAY1, start),
                    local(DAY1, end),
                ),
            )
        # day 2: an older plan and the newest one (whose planned drive counts: 3,000 s)
        for travel in ((9999.0, 9999.0), (1800.0, 1200.0)):
            plan = one(
                "INSERT INTO routing_plans (territory_id, plan_date, status, request)"
                " VALUES (%s, %s, 'ready', '{}') RETURNING id",
                tid,
                DAY2,
            )
            for seq, t in enumerate(travel, start=1):
                at = local(DAY2, f"{8 + seq}:00")
                conn.execute(
                    "INSERT INTO routing_stops (plan_id, visit_key, rep_id, seq, account_id,"
                    " eta, service_start, service_end, wait_s, slack_s, travel_s, distance_m)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s, 1000)",
                    (plan, f"account:{seq}", rep["id"], seq, acct, at, at, at, t),
                )
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 't', 'phone')", (phone,)
        )
        conn.execute(
            "INSERT INTO phone_devices (device_id, user_id) VALUES (%s, %s)", (phone, rep["id"])
        )
        fixes = track(
            local(DAY1, "08:30"),
            [
                ("move", 30),  # to the first stop
                ("stay", 60),
                ("move", 50),
                ("stay", 50),
                ("move", 20),
                ("stay", 90),  # lunch
                ("move", 35),  # the last 5 minutes inside the 14:00 visit: on site, not travel
                ("stay", 55),
            ],
        )
        last = fixes[-1][0]
        fixes.append((last + dt.timedelta(minutes=30), 2.5, 30.0))  # after a silence: no travel
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m, speed_mps)"
                " VALUES (%s, %s, %s, %s, 48.85, 5, %s)",
                [(t, phone, i, lon, speed) for i, (t, lon, speed) in enumerate(fixes)],
            )
        names = {
            u["id"]: one("SELECT name FROM users WHERE id = %s", u["id"]) for u in (rep, other)
        }
    return {"rep": rep, "other": other, "names": names}


def test_utilisation_is_time_on_site_over_the_shifts_of_the_working_days(
    console_url: str, admin: dict[str, Any], rep_days: dict[str, Any]
) -> None:
    rep, other, names = rep_days["rep"], rep_days["other"], rep_days["names"]
    # on site 60 + 50 (10:50-11:40, phone and geofence merged) + 60 = 170 min over two
    # 9-hour shifts (day 1 worked, day 2 planned)
    mine = [names[rep["id"]], 15.7, 2.8, 18.0, 2]
    assert kpi(console_url, login(console_url, rep), "technician_utilisation", **JUNE) == [mine]
    everyone = kpi(console_url, login(console_url, admin), "technician_utilisation", **JUNE)
    assert mine in everyone and [names[other["id"]], 44.4, 4.0, 9.0, 1] in everyone
    # a period holding neither day
    july = {"since": "2026-07-01T00:00:00Z", "until": "2026-08-01T00:00:00Z"}
    assert kpi(console_url, login(console_url, rep), "technician_utilisation", **july) == []


def test_travel_is_gps_moving_time_off_site_and_the_plan_drive_is_the_newest_plans(
    console_url: str, rep_days: dict[str, Any]
) -> None:
    rep, other, names = rep_days["rep"], rep_days["other"], rep_days["names"]
    rows = kpi(console_url, login(console_url, rep), "travel_vs_onsite", **JUNE)
    # on site 170 min; moving 30 + 50 + 20 + 30 min (the 5 minutes inside a visit and the
    # jump after a 30-minute silence left out); between stops 09:00-15:00 less on site =
    # 190 min; planned drive 3,000 s on day 2; travel share 130 / (130 + 170)
    assert rows == [[names[rep["id"]], 2.8, 2.2, 3.2, 0.8, 43.3, 2]]
    # without GPS fixes, travel is the time between stops (one visit: none)
    rows = kpi(console_url, login(console_url, other), "travel_vs_onsite", **JUNE)
    assert rows == [[names[other["id"]], 4.0, 0.0, 0.0, 0.0, 0.0, 1]]
