"""Resources and bookings against the real database and app: concurrent requests cannot
double-book, a conflict answers 409 with what is in the way and alternatives, the slot
finder respects working hours in two zones, existing events and travel time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests

from kernel.settings import Settings
from tests.calendars.calworld import CalWorld, make_world


@pytest.fixture(scope="module")
def world(test_settings: Settings) -> CalWorld:
    return make_world(test_settings.dsn)


def next_monday(weeks_ahead: int = 1) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 + 7 * weeks_ahead)


def at(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat()


def racing(n: int, call: Callable[[int], requests.Response]) -> list[requests.Response]:
    """n requests released at the same instant from n threads."""
    gate = threading.Barrier(n)

    def one(i: int) -> requests.Response:
        gate.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def resource(app_url: str, world: CalWorld, kind: str, capacity: int = 1) -> int:
    r = requests.post(
        f"{app_url}/api/v1/calendar/resources",
        json={
            "name": f"{kind}-{datetime.now().timestamp()}",
            "kind": kind,
            "capacity": capacity,
            "territory_id": world.territory,
        },
        headers=world.h("manager"),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def book(
    app_url: str, world: CalWorld, who: str, rid: int, s: datetime, e: datetime
) -> requests.Response:
    return requests.post(
        f"{app_url}/api/v1/calendar/bookings",
        json={"resource_id": rid, "start": iso(s), "end": iso(e), "title": f"trip of {who}"},
        headers=world.h(who),
        timeout=60,
    )


def test_two_concurrent_bookings_of_one_vehicle_give_one_201_and_one_409(
    app_url: str, world: CalWorld, test_settings: Settings
) -> None:
    van = resource(app_url, world, "vehicle")
    d = next_monday()
    for round_ in range(3):
        s, e = at(d, 9 + 2 * round_), at(d, 10 + 2 * round_)

        def attempt(i: int, s: datetime = s, e: datetime = e) -> requests.Response:
            return book(app_url, world, ["ny", "berlin"][i], van, s, e)

        answers = racing(2, attempt)
        codes = sorted(r.status_code for r in answers)
        assert codes == [201, 409], [r.text for r in answers]
        won = next(r.json() for r in answers if r.status_code == 201)
        lost = next(r.json() for r in answers if r.status_code == 409)
        assert lost["error"]["code"] == "conflict"
        assert lost["conflict"]["booking_id"] == won["id"]
        assert lost["alternatives"], "a conflict offers the next free times"
        assert all(
            datetime.fromisoformat(a["start"]) >= e or datetime.fromisoformat(a["end"]) <= s
            for a in lost["alternatives"]
        )
    with psycopg.connect(test_settings.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM cal_bookings a JOIN cal_bookings b ON a.resource_id = b.resource_id"
            " AND a.id < b.id AND a.during && b.during WHERE a.resource_id = %s"
            " AND a.status = 'booked' AND b.status = 'booked'",
            (van,),
        ).fetchone()
        assert row == (0,)


def test_capacity_n_takes_exactly_n_concurrent_bookings(app_url: str, world: CalWorld) -> None:
    room = resource(app_url, world, "room", capacity=2)
    other = resource(app_url, world, "room", capacity=1)
    d = next_monday()
    s, e = at(d, 13), at(d, 14)
    answers = racing(6, lambda i: book(app_url, world, "manager", room, s, e))
    assert sorted(r.status_code for r in answers) == [201, 201, 409, 409, 409, 409]
    assert {r.json()["unit"] for r in answers if r.status_code == 201} == {1, 2}
    lost = next(r.json() for r in answers if r.status_code == 409)
    assert other in {o["id"] for o in lost["other_resources"]}


def test_moving_a_booking_onto_another_answers_409_and_a_free_time_200(
    app_url: str, world: CalWorld
) -> None:
    tool = resource(app_url, world, "tool")
    d = next_monday()
    first = book(app_url, world, "utc", tool, at(d, 9), at(d, 10)).json()
    second = book(app_url, world, "utc", tool, at(d, 11), at(d, 12)).json()
    url = f"{app_url}/api/v1/calendar/bookings/{second['id']}"
    r = requests.patch(
        url,
        json={"start": iso(at(d, 9, 30)), "end": iso(at(d, 10, 30))},
        headers=world.h("utc"),
        timeout=30,
    )
    assert r.status_code == 409
    assert r.json()["conflict"]["booking_id"] == first["id"]
    r = requests.patch(
        url,
        json={"start": iso(at(d, 10)), "end": iso(at(d, 11, 30))},
        headers=world.h("utc"),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["reschedules"] == 1
    # someone outside the territory does not see the tool at all
    r = book(app_url, world, "outsider", tool, at(d, 15), at(d, 16))
    assert r.status_code == 404


def slots(app_url: str, world: CalWorld, who: str, **body: Any) -> requests.Response:
    return requests.post(
        f"{app_url}/api/v1/calendar/slots", json=body, headers=world.h(who), timeout=60
    )


def local(d: date, hh: int, tz: str) -> datetime:
    return datetime.combine(d, time(hh), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def test_slot_finder_respects_working_hours_in_two_zones_and_existing_events(
    app_url: str, world: CalWorld
) -> None:
    d = next_monday(2)
    lo = max(local(d, 9, "America/New_York"), local(d, 9, "Europe/Berlin"))
    hi = min(local(d, 17, "America/New_York"), local(d, 17, "Europe/Berlin"))
    body = {
        "attendees": [world.users["ny"], world.users["berlin"]],
        "duration_min": 30,
        "start": iso(at(d, 0)),
        "end": iso(at(d, 23, 59)),
        "mode": "earliest",
        "limit": 50,
    }
    r = slots(app_url, world, "manager", **body)
    assert r.status_code == 200, r.text
    got = [
        (datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
        for s in r.json()["items"]
    ]
    assert got and got[0][0] == lo and got[-1][1] == hi
    assert all(lo <= s and e <= hi for s, e in got)
    # an existing meeting of the New York rep takes its hour out
    m = requests.post(
        f"{app_url}/api/v1/calendar/meetings",
        json={
            "subject": "standing call",
            "start": iso(lo),
            "end": iso(lo + timedelta(hours=1)),
            "owner_id": world.users["ny"],
        },
        headers=world.h("manager"),
        timeout=30,
    )
    assert m.status_code == 201, m.text
    r = slots(app_url, world, "manager", **body)
    starts = [datetime.fromisoformat(s["start"]) for s in r.json()["items"]]
    assert starts and starts[0] == lo + timedelta(hours=1)
    # the same time again for that rep is a 409 naming the meeting
    again = requests.post(
        f"{app_url}/api/v1/calendar/meetings",
        json={
            "subject": "clash",
            "start": iso(lo + timedelta(minutes=30)),
            "end": iso(lo + timedelta(minutes=90)),
            "owner_id": world.users["ny"],
        },
        headers=world.h("manager"),
        timeout=30,
    )
    assert again.status_code == 409
    assert again.json()["conflict"]["ref"] == f"activity:{m.json()['activity_id']}"
    assert datetime.fromisoformat(again.json()["alternatives"][0]["start"]) >= lo + timedelta(
        hours=1
    )


def test_slot_finder_keeps_travel_time_to_and_from_on_site_meetings(
    app_url: str, world: CalWorld, test_settings: Settings
) -> None:
    d = next_monday(3)
    rep = world.users["utc"]
    with psycopg.connect(test_settings.dsn) as conn:
        for s, e in ((at(d, 9), at(d, 10)), (at(d, 11, 30), at(d, 12, 30))):
            conn.execute(
                "INSERT INTO work_orders (account_id, title, status, assignee_id, scheduled_start,"
                " scheduled_end) VALUES (%s, 'service in Paris', 'scheduled', %s, %s, %s)",
                (world.accounts["paris"], rep, s, e),
            )
    body = {
        "attendees": [rep],
        "duration_min": 45,
        "start": iso(at(d, 0)),
        "end": iso(at(d, 23)),
        "mode": "earliest",
        "limit": 3,
    }
    plain = slots(app_url, world, "utc", **body).json()["items"]
    assert datetime.fromisoformat(plain[0]["start"]) == at(d, 10)
    on_site = slots(app_url, world, "utc", account_id=world.accounts["versailles"], **body)
    assert on_site.status_code == 200, on_site.text
    first = on_site.json()["items"][0]
    # Paris -> Versailles is about half an hour: 10:00-10:45 would leave no time to get there
    # and back before 11:30, so the first slot follows the second work order and the drive
    assert datetime.fromisoformat(first["start"]) >= at(d, 12, 30) + timedelta(minutes=20)
    assert first["travel_s"] > 0 and any(x.startswith("adds") for x in first["reasons"])
    # 30 minutes fit between the two work orders, with the drive both ways
    short = slots(
        app_url,
        world,
        "utc",
        account_id=world.accounts["versailles"],
        **{**body, "duration_min": 15, "mode": "best", "limit": 50},
    ).json()["items"]
    between = [s for s in short if at(d, 10) < datetime.fromisoformat(s["start"]) < at(d, 11, 30)]
    assert between and any("fits between two visits" in x for x in between[0]["reasons"])


def test_slot_finder_limits_and_scoping(app_url: str, world: CalWorld) -> None:
    d = next_monday()
    too_long = slots(
        app_url,
        world,
        "manager",
        attendees=[world.users["ny"]],
        duration_min=30,
        start=iso(at(d, 0)),
        end=iso(at(d, 0) + timedelta(weeks=13)),
    )
    assert too_long.status_code == 422
    too_many = slots(app_url, world, "manager", attendees=list(range(1, 52)), duration_min=30)
    assert too_many.status_code == 422
    hidden = slots(app_url, world, "outsider", attendees=[world.users["ny"]], duration_min=30)
    assert hidden.status_code == 404
    naive = slots(
        app_url,
        world,
        "manager",
        attendees=[world.users["ny"]],
        duration_min=30,
        start="2027-01-04T09:00:00",
    )
    assert naive.status_code == 422


def test_slot_finder_refuses_implausible_times(app_url: str, world: CalWorld) -> None:
    """A start in year 9999 overflowed `start + 2 weeks` (was a 500)."""
    for body in (
        {"start": "9999-12-31T23:59:59Z"},
        {"start": "0001-01-01T00:00:00Z"},
        {"start": "2027-01-04T09:00:00Z", "end": "9999-12-31T23:59:59Z"},
    ):
        r = slots(app_url, world, "manager", attendees=[world.users["ny"]], duration_min=30, **body)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "implausible" and err["field"] in body
    r = requests.post(
        f"{app_url}/api/v1/calendar/bookings",
        json={
            "resource_id": 1,
            "title": "far",
            "start": "9999-12-31T00:00:00Z",
            "end": "9999-12-31T01:00:00Z",
        },
        headers=world.h("manager"),
        timeout=30,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "start", r.text
