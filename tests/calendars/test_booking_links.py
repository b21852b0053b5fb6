"""Customer self-booking through a signed link: it offers the rep's free slots, a booking
creates the CRM meeting once, and the link expires and is revocable. The public endpoint
validates its input and is rate-limited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import requests
from psycopg import AsyncConnection

from calendars import booking_links
from kernel.settings import Settings
from tests.calendars.calworld import CalWorld, make_world


@pytest.fixture(scope="module")
def world(test_settings: Settings) -> CalWorld:
    return make_world(test_settings.dsn)


def new_link(app_url: str, world: CalWorld, who: str = "utc", **extra: Any) -> dict[str, Any]:
    r = requests.post(
        f"{app_url}/api/v1/calendar/booking-links",
        json={"title": "Service consultation", "duration_min": 30, "window_days": 14, **extra},
        headers=world.h(who),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_a_customer_books_a_slot_once_through_the_link(
    app_url: str, world: CalWorld, test_settings: Settings
) -> None:
    made = new_link(app_url, world, account_id=world.accounts["paris"])
    token = made["token"]
    assert made["url"].endswith(f"/book/{token}")
    page = requests.get(f"{app_url}/book/{token}", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    info = requests.get(f"{app_url}/api/v1/public/book/{token}", timeout=60).json()
    assert info["title"] == "Service consultation" and info["slots"]
    first = info["slots"][0]
    start = datetime.fromisoformat(first["start"])
    assert start >= datetime.now(UTC) + timedelta(minutes=59)
    body = {
        "start": first["start"],
        "name": "Ada Customer",
        "email": "ada@example.com",
        "phone": "+33 1 23 45 67 89",
        "note": "the pump in hall B",
    }
    r = requests.post(f"{app_url}/api/v1/public/book/{token}", json=body, timeout=60)
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT owner_id, type, start_at, account_id, source, body FROM activities WHERE id = %s",
            (int(ref[1:]),),
        ).fetchone()
    assert row is not None
    owner, typ, at, account, source, text = row
    assert (owner, typ, at, account, source) == (
        world.users["utc"],
        "meeting",
        start,
        world.accounts["paris"],
        "booking_link",
    )
    assert "ada@example.com" in text
    # the same submission again books nothing more; the slot is gone from the page
    again = requests.post(f"{app_url}/api/v1/public/book/{token}", json=body, timeout=60)
    assert again.status_code == 409
    info2 = requests.get(f"{app_url}/api/v1/public/book/{token}", timeout=60).json()
    assert first["start"] not in {s["start"] for s in info2["slots"]}
    # and the rep's calendar shows it
    ev = requests.get(
        f"{app_url}/api/v1/calendar/events",
        params={
            "start": (start - timedelta(hours=1)).isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
        },
        headers=world.h("utc"),
        timeout=30,
    ).json()["items"]
    assert any(e["ref"] == f"activity:{ref[1:]}" for e in ev)


def test_a_link_expires_and_is_revocable_and_cannot_be_forged(
    app_url: str, world: CalWorld, test_settings: Settings
) -> None:
    made = new_link(app_url, world, who="berlin")
    token = made["token"]
    link_id = made["link"]["id"]
    assert requests.get(f"{app_url}/api/v1/public/book/{token}", timeout=60).status_code == 200
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert requests.get(f"{app_url}/api/v1/public/book/{forged}", timeout=30).status_code == 404
    assert requests.get(f"{app_url}/book/{forged}", timeout=30).status_code == 404
    # someone outside the team cannot revoke it; the rep can
    url = f"{app_url}/api/v1/calendar/booking-links/{link_id}"
    assert requests.delete(url, headers=world.h("outsider"), timeout=30).status_code == 404
    assert requests.delete(url, headers=world.h("berlin"), timeout=30).status_code == 204
    for path in (f"/api/v1/public/book/{token}", f"/book/{token}"):
        assert requests.get(app_url + path, timeout=30).status_code == 410
    r = requests.post(
        f"{app_url}/api/v1/public/book/{token}",
        json={"start": "2030-01-07T10:00:00Z", "name": "X", "email": "x@example.com"},
        timeout=30,
    )
    assert r.status_code == 410
    # an expired link (its expiry moved back, and signed anew as the server would) is 410
    made = new_link(app_url, world, who="berlin")

    async def expire() -> str:
        async with await AsyncConnection.connect(test_settings.dsn) as conn:
            await conn.execute(
                "UPDATE cal_booking_links SET created_at = now() - interval '2 days',"
                " expires_at = date_trunc('second', now()) - interval '1 day' WHERE id = %s",
                (made["link"]["id"],),
            )
            link = await booking_links.get(conn, made["link"]["id"])
            await conn.commit()
        assert link is not None
        return booking_links.sign(booking_links.link_key(test_settings), link)

    expired = asyncio.run(expire())
    assert requests.get(f"{app_url}/api/v1/public/book/{expired}", timeout=30).status_code == 410
    # the old token no longer matches the row at all
    assert (
        requests.get(f"{app_url}/api/v1/public/book/{made['token']}", timeout=30).status_code == 404
    )


def test_the_public_endpoint_refuses_bad_input(app_url: str, world: CalWorld) -> None:
    token = new_link(app_url, world, who="ny")["token"]
    url = f"{app_url}/api/v1/public/book/{token}"
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(
        hour=15, minute=0, second=0, microsecond=0
    )
    bad: list[dict[str, Any]] = [
        {"start": soon.isoformat(), "name": "A", "email": "not-an-email"},
        {"start": soon.isoformat(), "name": "<script>", "email": "a@example.com"},
        {"start": soon.isoformat(), "name": "A\u0007", "email": "a@example.com"},
        {"start": soon.replace(tzinfo=None).isoformat(), "name": "A", "email": "a@example.com"},
        {"start": soon.isoformat(), "name": "A", "email": "a@example.com", "admin": True},
        {"start": (soon + timedelta(days=60)).isoformat(), "name": "A", "email": "a@example.com"},
        {"start": (soon + timedelta(seconds=7)).isoformat(), "name": "A", "email": "a@example.com"},
        {"start": soon.isoformat(), "name": "A", "email": "a@example.com", "note": "x" * 1001},
    ]
    for body in bad:
        r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["error"]["field"]
    big = requests.post(
        url,
        data=b"{" + b" " * 9000 + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert big.status_code == 413
    bad_token = requests.get(f"{app_url}/api/v1/public/book/..%2Fetc", timeout=30)
    assert bad_token.status_code == 404


def test_the_public_endpoint_is_rate_limited(
    app_url: str, world: CalWorld, test_settings: Settings
) -> None:
    token = new_link(app_url, world, who="ny", duration_min=60, window_days=2)["token"]
    url = f"{app_url}/api/v1/public/book/{token}"
    try:
        codes = [requests.get(url, timeout=60).status_code for _ in range(125)]
        assert 429 in codes and codes[0] == 200
        limited = next(i for i, c in enumerate(codes) if c == 429)
        r = requests.get(url, timeout=60)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert limited <= 121
    finally:
        # every test of this worker calls from 127.0.0.1 to the same app: left exhausted,
        # the address's budget refused the booking page of the next test for two minutes
        with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM cal_rate_windows WHERE key LIKE 'read:%%'")
