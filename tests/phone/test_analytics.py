"""Phone analytics per rep against the real database: visits per day, time on site,
travel from GPS, first-time fix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from tests.world import People


def test_rep_figures_from_visits_gps_and_work_orders(
    app_url: str, people: People, db_dsn: str
) -> None:
    rep = people.users["rep1"]
    sfx = uuid.uuid4().hex[:6]
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=3)
    phone = f"ph-an-{sfx}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (device_id, tenant, kind) VALUES (%s, 'acme', 'phone')", (phone,)
        )
        conn.execute(
            "INSERT INTO geo_device_rep (device_id, user_id) VALUES (%s, %s)", (phone, rep)
        )
        accts = [
            int(
                conn.execute(
                    "INSERT INTO accounts (name, type, territory_id) VALUES (%s, 'customer', %s) RETURNING id",
                    (f"An {i} {sfx}", people.t1),
                ).fetchone()[0]  # type: ignore[index]
            )
            for i in range(3)
        ]
        # 100 fixes 10 s apart moving 100 m each (10 m/s): 9.9 km, 990 s of travel
        for i in range(100):
            conn.execute(
                "INSERT INTO gps_fix (time, device_id, seq, lon, lat, accuracy_m) VALUES (%s, %s, %s, %s, 45.0, 5)",
                (t0 + timedelta(seconds=10 * i), phone, i, 4.0 + i * 100 / 78_850),
            )
        conn.execute(
            "INSERT INTO visits (subject_id, fence_id, account_id, rep_id, arrived_at, checked_in_at,"
            " departed_at, duration_s, status) VALUES (%s, 1, %s, %s, %s, %s, %s, 1800, 'completed')",
            (
                phone,
                accts[0],
                rep,
                t0 + timedelta(hours=1),
                t0 + timedelta(hours=1),
                t0 + timedelta(hours=1.5),
            ),
        )
        conn.execute(
            "INSERT INTO phone_stop_work (user_id, day, stop_key, account_id, checkin_at, checkout_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                rep,
                (t0 + timedelta(hours=2)).date(),
                f"acct:{accts[1]}",
                accts[1],
                t0 + timedelta(hours=2),
                t0 + timedelta(hours=2, minutes=20),
            ),
        )
        wos = []
        for a in (accts[0], accts[2]):
            wos.append(
                int(
                    conn.execute(
                        "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status,"
                        " created_at) VALUES (%s, 'Fix', %s, %s, 'assigned', %s) RETURNING id",
                        (a, people.t1, rep, t0),
                    ).fetchone()[0]  # type: ignore[index]
                )
            )
        for w in wos:
            conn.execute("UPDATE work_orders SET status = 'in_progress' WHERE id = %s", (w,))
            conn.execute("UPDATE work_orders SET status = 'done' WHERE id = %s", (w,))
        # a follow-up at the second account: that one was not fixed the first time
        conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id) VALUES (%s, 'Again', %s)",
            (accts[2], people.t1),
        )
    r = people.api(app_url, "rep1").get(f"/phone/analytics?from={t0.date()}&to={now.date()}")
    assert r.status_code == 200, r.text
    (mine,) = [x for x in r.json()["reps"] if x["rep_id"] == rep]
    assert mine["visits"] >= 2
    assert mine["time_on_site_s"] >= 1800 + 1200
    assert 9_800 <= mine["travel_m"] <= 10_000
    assert 980 <= mine["travel_s"] <= 1000
    assert mine["work_orders_done"] >= 2
    ftf = mine["first_time_fixes"]
    assert ftf <= mine["work_orders_done"] - 1  # the one with a follow-up is not a first-time fix
    # rep2 cannot ask for rep1's figures; the manager (rep1's team) can
    assert people.api(app_url, "rep2").get(f"/phone/analytics?rep_id={rep}").status_code == 404
    assert people.api(app_url, "manager").get(f"/phone/analytics?rep_id={rep}").status_code == 200
    assert (
        people.api(app_url, "rep1")
        .get("/phone/analytics?from=2026-12-07&to=2026-01-01")
        .status_code
        == 422
    )
