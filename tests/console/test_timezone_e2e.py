"""Times in the console are the user's time zone (users.timezone, returned by /auth/me),
not the browser's: a user in Asia/Tokyo whose browser runs in America/New_York sees a
known instant as Tokyo's wall clock and on Tokyo's calendar day."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login

# 23:30 UTC on 10 March 2026: 08:30 on the 11th in Tokyo, 19:30 on the 10th in New York
INSTANT = "2026-03-10T23:30:00Z"


def test_times_are_shown_in_the_users_zone_not_the_browsers(
    console_url: str,
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    user = make_user(test_settings.dsn, "admin")
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = %s", (user["id"],))
    tok = login(console_url, user)
    me = call(console_url, "GET", "/api/v1/auth/me", token=tok)
    assert me["timezone"] == "Asia/Tokyo"
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "Zone Co"}, tok)
    subject = f"Zone call {uuid.uuid4().hex[:6]}"
    act = call(
        console_url,
        "POST",
        "/api/v1/activities",
        {"type": "call", "subject": subject, "account_id": acct["id"], "start_at": INSTANT},
        tok,
    )
    res = run_scenario(
        "zone",
        console_url,
        {
            "user": user,
            "activityId": act["id"],
            "subject": subject,
            "browserZone": "America/New_York",
            "month": "2026-03",
        },
    )
    assert res["errors"] == [], res
    out = res["out"]
    assert out["browserZone"] == "America/New_York"
    assert out["note"] == "Times in Asia/Tokyo"
    assert "3/11/2026, 8:30:00 AM" in out["main"], out["main"]
    assert "7:30:00 PM" not in out["main"]
    # the month grid puts it on the user's day, not the browser's
    assert out["days"] == ["2026-03-11"], out["days"]
