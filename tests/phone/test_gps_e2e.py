"""GPS from the phone: Chromium's geolocation emulation drives the PWA to a site through
the real broker (WebSockets) and gateway; the geofence checks it in, the console map shows
it; fixes buffered offline arrive once each, in order."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login

SITE = (4.8400, 45.7600)
START = (4.8200, 45.7500)
OFFLINE_FIXES = 600  # ten minutes at 1 Hz
# the rep's zone, far from the browser's (UTC): the shift hours are read in the rep's zone
REP_ZONE = "America/Los_Angeles"


def _set_shift(dsn: str, user_id: int, start_h: float, end_h: float) -> tuple[str, str]:
    """The rep's shift from `start_h` to `end_h` hours from now, on REP_ZONE's wall clock."""
    now = datetime.now(UTC).astimezone(ZoneInfo(REP_ZONE))
    start = (now + timedelta(hours=start_h)).strftime("%H:%M")
    end = (now + timedelta(hours=end_h)).strftime("%H:%M")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE users SET timezone = %s, shift_start = %s, shift_end = %s WHERE id = %s",
            (REP_ZONE, start, end, user_id),
        )
    return start, end


def _world(dsn: str, base: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    sfx = uuid.uuid4().hex[:6]
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"gps-{sfx}",)
        ).fetchone()
        assert row is not None
        territory = int(row[0])
    rep = make_user(dsn, "rep", territory_id=territory)
    manager = make_user(dsn, "admin")
    with psycopg.connect(dsn, autocommit=True) as conn:
        a = conn.execute(
            "INSERT INTO accounts (name, type, location, territory_id, owner_id)"
            " VALUES (%s, 'customer', ST_MakePoint(%s, %s)::geography, %s, %s) RETURNING id",
            (f"Pump site {sfx}", *SITE, territory, rep["id"]),
        ).fetchone()
        assert a is not None
        account = int(a[0])
        conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status,"
            " estimated_duration_min) VALUES (%s, 'Seal check', %s, %s, 'assigned', 30)",
            (account, territory, rep["id"]),
        )
    tok = login(base, manager)
    call(
        base,
        "POST",
        "/api/v1/geo/fences",
        {
            "geometry": {"type": "Point", "coordinates": list(SITE)},
            "radius_m": 150,
            "dwell_s": 20,
            "account_id": account,
            "name": f"site {sfx}",
        },
        tok,
    )
    return rep, manager, account


def _route(n: int = 10) -> list[list[float]]:
    return [
        [START[0] + (SITE[0] - START[0]) * i / n, START[1] + (SITE[1] - START[1]) * i / n]
        for i in range(n)
    ]


def test_a_phone_driving_to_a_site_checks_in_and_its_offline_fixes_arrive_once_in_order(
    phone_app: str,
    gateway: None,
    test_settings: Settings,
    run_phone: Callable[..., dict[str, Any]],
) -> None:
    dsn = test_settings.dsn
    rep, manager, account = _world(dsn, phone_app)
    # on shift now in the rep's zone (the window may cross midnight), off shift on the
    # browser's UTC clock: starting the shift works only if the rep's zone is used
    _set_shift(dsn, rep["id"], -2, 2)
    r = run_phone(
        "drive",
        phone_app,
        {
            "user": rep,
            "manager": manager,
            "route": _route(),
            "site": list(SITE),
            "checkinTimeoutMs": 300_000,
            "offlineFixes": OFFLINE_FIXES,
        },
    )
    device = r["device"]
    assert r["autoIn"], r["stopText"]
    lon, lat = r["mapLonLat"]
    assert abs(lon - SITE[0]) < 0.002 and abs(lat - SITE[1]) < 0.002, r["mapLonLat"]
    assert r["waitingOffline"] >= OFFLINE_FIXES
    with psycopg.connect(dsn) as conn:
        visit = conn.execute(
            "SELECT rep_id, account_id FROM visits WHERE subject_id = %s", (device,)
        ).fetchone()
        assert visit == (rep["id"], account)
        rows = conn.execute(
            "SELECT seq, (extract(epoch FROM time) * 1000)::bigint, lon FROM gps_fix"
            " WHERE device_id = %s ORDER BY time",
            (device,),
        ).fetchall()
        dupes = conn.execute(
            "SELECT count(*) - count(DISTINCT time) FROM gps_fix WHERE device_id = %s", (device,)
        ).fetchone()
        messages = conn.execute(
            "SELECT count(*), max(items) FROM ingest_message WHERE device_id = %s", (device,)
        ).fetchone()
    assert dupes == (0,)
    # the offline fixes: east of the site, each 10 m further; every one stored once
    offline = [row for row in rows if row[2] > SITE[0] + 0.02]
    assert len(offline) == OFFLINE_FIXES
    lons = [row[2] for row in offline]
    assert lons == sorted(lons)
    seqs = [row[0] for row in rows]
    assert seqs == sorted(seqs)  # message order follows fix order
    assert messages is not None and messages[1] > 1  # buffered fixes left in batches
    assert r["errors"] == []


def test_a_shift_cannot_start_outside_the_reps_hours_in_the_reps_zone(
    phone_app: str,
    test_settings: Settings,
    run_phone: Callable[..., dict[str, Any]],
) -> None:
    rep, _, _ = _world(test_settings.dsn, phone_app)
    # ended an hour ago in the rep's zone (and it started nine hours ago)
    start, end = _set_shift(test_settings.dsn, rep["id"], -9, -1)
    r = run_phone("offshift", phone_app, {"user": rep})
    assert r["shift"] == "outside-hours"
    assert r["gpsLink"] is None  # no broker connection was opened
    assert f"Outside your shift ({start}-{end})" in r["toast"]
    assert r["errors"] == []
