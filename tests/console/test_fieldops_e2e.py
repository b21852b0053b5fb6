"""The console's field-work pieces in headless Chromium, as a service manager: a work
order's photo taken on a rep's phone (thumbnail, opens in full), the team's field analytics
with one rep's day, and the fleet's rollouts panel."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from PIL import Image

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import login
from tests.console.test_records_e2e import territory


def test_a_manager_sees_the_phones_photos_and_the_teams_field_work(
    console_url: str, test_settings: Settings, run_scenario: Callable[..., dict[str, Any]]
) -> None:
    dsn = test_settings.dsn
    tid = territory(dsn)
    manager = make_user(dsn, "manager", territory_id=tid)
    rep = make_user(dsn, "rep", territory_id=tid)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET manager_id = %s WHERE id = %s", (manager["id"], rep["id"]))
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id, address) VALUES"
            " ('Photo Pumps', 'customer', %s, '3 Mill Lane') RETURNING id",
            (tid,),
        ).fetchone()
        assert acct is not None
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status)"
            " VALUES (%s, 'Check impeller', %s, %s, 'in_progress') RETURNING id",
            (acct[0], tid, rep["id"]),
        ).fetchone()
        assert wo is not None
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {login(console_url, rep)}"
    api = f"{console_url}/api/v1"
    day = s.get(f"{api}/phone/day", timeout=30).json()
    stop = next(x for x in day["stops"] if x["work_order"] and x["work_order"]["id"] == wo[0])
    now = datetime.now(UTC).replace(microsecond=0)
    path = f"{api}/phone/day/stops/{stop['key']}?date={day['date']}"
    assert s.post(path, json={"checkin_at": (now - timedelta(hours=2)).isoformat()}).ok
    assert s.post(path, json={"checkout_at": (now - timedelta(hours=1)).isoformat()}).ok
    photo = io.BytesIO()
    Image.new("RGB", (1200, 900), (200, 90, 30)).save(photo, "PNG")
    up = s.post(
        f"{api}/phone/attachments?work_order_id={wo[0]}&filename=impeller.png",
        data=photo.getvalue(),
        headers={"Content-Type": "image/png"},
        timeout=30,
    )
    assert up.status_code == 201, up.text

    seen = run_scenario(
        "fieldops",
        console_url,
        {"manager": manager, "workOrderId": wo[0], "accountId": acct[0]},
    )
    assert seen["errors"] == [] and seen["bad"] == [], seen
    assert len(seen["attachments"]) == 1 and "impeller.png" in seen["attachments"][0]
    assert seen["thumbWidth"] == 256  # the server's thumbnail, fetched with the token
    assert seen["opened"].startswith("blob:")
    mine = [r for r in seen["reps"] if r[0] == f"Rep {rep['email'][:6]}"]
    assert len(mine) == 1 and int(mine[0][2]) >= 1, seen["reps"]  # visits
    assert seen["days"] and all(len(d) == 5 for d in seen["days"])
    assert seen["rolloutsShown"] is True
    # a prospect without a won deal has no churn score, and the page says why
    assert "no won deal yet" in seen["customerValue"]
    assert "Customer segments" in seen["segments"]
