"""The calendars HTTP API on the whole app: opt-in and scoping, events with recurrence and
attendees, feeds without login (404 once revoked), ICS import with bad events reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from calendars.ical import parse_calendar
from tests.world import People

pytestmark = pytest.mark.integration


def test_sync_settings_are_seen_by_the_user_their_manager_and_admins(
    app_url: str, people: People
) -> None:
    rep1 = people.users["rep1"]
    put = people.api(app_url, "rep1").put(f"/calendar/sync/{rep1}", json={})
    assert put.status_code == 200, put.text
    out = put.json()
    assert out["enabled"] is True and out["username"] == f"fm-{rep1}"
    assert "password" not in out
    assert people.api(app_url, "manager").get(f"/calendar/sync/{rep1}").status_code == 200
    assert people.api(app_url, "admin").get(f"/calendar/sync/{rep1}").status_code == 200
    assert people.api(app_url, "rep2").get(f"/calendar/sync/{rep1}").status_code == 404
    assert people.api(app_url, "rep2").put(f"/calendar/sync/{rep1}", json={}).status_code == 404
    # the manager sees it, but opting someone else in is theirs to do
    assert people.api(app_url, "manager").put(f"/calendar/sync/{rep1}", json={}).status_code == 403
    assert people.api(app_url, None).get(f"/calendar/sync/{rep1}").status_code == 401
    # an admin may act for anyone, but not for a user that does not exist
    assert people.api(app_url, "admin").put("/calendar/sync/999999999", json={}).status_code == 404
    run = people.api(app_url, "rep1").post(f"/calendar/sync/{rep1}/run")
    assert run.status_code == 202 and run.json()["job_id"] > 0


def test_recurring_event_with_attendees_stores_invitations_and_expands_in_its_zone(
    app_url: str, people: People
) -> None:
    api = people.api(app_url, "rep1")
    start = datetime(2026, 10, 19, 8, 0, tzinfo=UTC)  # 10:00 in Berlin (summer time)
    r = api.post(
        "/calendar/events",
        json={
            "subject": "Stand-up",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "tz": "Europe/Berlin",
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "attendees": [{"email": "Ann@Customer.example", "name": "Ann"}],
        },
    )
    assert r.status_code == 201, r.text
    ev = r.json()
    assert ev["rrule"] == "FREQ=WEEKLY;COUNT=3"
    assert ev["attendees"] == [
        {
            "email": "ann@customer.example",
            "name": "Ann",
            "partstat": "NEEDS-ACTION",
            "role": "REQ-PARTICIPANT",
        }
    ]
    (inv,) = ev["invitations"]
    assert (inv["method"], inv["direction"], inv["recipient"], inv["sent_at"]) == (
        "REQUEST",
        "out",
        "ann@customer.example",
        None,
    )
    occ = api.get(
        "/calendar/occurrences",
        params={
            "user_id": people.users["rep1"],
            "start": "2026-10-01T00:00:00Z",
            "end": "2026-11-30T00:00:00Z",
            "tz": "Europe/Berlin",
        },
    )
    assert occ.status_code == 200, occ.text
    items = [o for o in occ.json()["items"] if o["event_id"] == ev["event_id"]]
    # 10:00 local every week: 08:00 UTC before 25 October, 09:00 UTC after
    assert [o["start"] for o in items] == [
        "2026-10-19T08:00:00Z",
        "2026-10-26T09:00:00Z",
        "2026-11-02T09:00:00Z",
    ]
    assert all(o["local_start"][11:16] == "10:00" for o in items)
    # another territory's rep does not see the activity's event
    assert (
        people.api(app_url, "rep2").get(f"/calendar/events/{ev['activity_id']}").status_code == 404
    )
    bad = api.post(
        "/calendar/events",
        json={
            "subject": "x",
            "start": start.isoformat(),
            "end": start.isoformat(),
            "rrule": "FREQ=SECONDLY",
        },
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rrule"


def test_feed_url_works_without_login_and_404s_after_revocation(
    app_url: str, people: People
) -> None:
    api = people.api(app_url, "rep1")
    start = (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    made = api.post(
        "/calendar/events",
        json={
            "subject": "Feed meeting",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "tz": "America/New_York",
        },
    )
    assert made.status_code == 201, made.text
    r = api.post("/calendar/feeds", json={"scope": "user", "name": "phone"})
    assert r.status_code == 201, r.text
    feed = r.json()
    url = app_url + feed["url"]
    got = requests.get(url, timeout=30)  # no Authorization header
    assert got.status_code == 200
    assert got.headers["Content-Type"].startswith("text/calendar")
    assert "BEGIN:VTIMEZONE" in got.text and "TZID:America/New_York" in got.text
    assert any(e.summary == "Feed meeting" and e.start == start for e in parse_calendar(got.text))
    # the manager's team feed holds the rep's events too
    team = people.api(app_url, "manager").post("/calendar/feeds", json={"scope": "team"})
    assert team.status_code == 201
    assert "Feed meeting" in requests.get(app_url + team.json()["url"], timeout=30).text
    # another rep cannot see or revoke it; the owner can
    assert people.api(app_url, "rep2").delete(f"/calendar/feeds/{feed['id']}").status_code == 404
    listed = api.get("/calendar/feeds").json()["items"]
    assert feed["id"] in [f["id"] for f in listed] and all(f["url"] is None for f in listed)
    assert api.delete(f"/calendar/feeds/{feed['id']}").status_code == 204
    assert requests.get(url, timeout=30).status_code == 404
    assert requests.get(app_url + "/cal/feeds/fmcal_guessed.ics", timeout=30).status_code == 404


ICS_WITH_BAD_ROWS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:good-1@import.test\r
DTSTAMP:20260101T000000Z\r
DTSTART;TZID=Europe/Paris:20260301T090000\r
DTEND;TZID=Europe/Paris:20260301T100000\r
SUMMARY:Good one\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:bad-time@import.test\r
DTSTAMP:20260101T000000Z\r
DTSTART:2026-03-01 nine o'clock\r
SUMMARY:Bad time\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:bad-rule@import.test\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260302T090000Z\r
DTEND:20260302T100000Z\r
RRULE:FREQ=SECONDLY\r
SUMMARY:Too often\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:good-2@import.test\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260303T090000Z\r
DURATION:PT45M\r
RRULE:FREQ=DAILY;COUNT=3\r
SUMMARY:Good two\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260304T090000Z\r
SUMMARY:No UID\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_ics_import_keeps_good_events_and_reports_bad_ones_with_line_and_uid(
    app_url: str, people: People
) -> None:
    api = people.api(app_url, "rep2")
    headers = {"Content-Type": "text/calendar"}
    r = api.post("/calendar/import", data=ICS_WITH_BAD_ROWS.encode(), headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["created"], out["updated"]) == (2, 0)
    problems = {(p["line"], p["uid"]) for p in out["problems"]}
    assert problems == {(11, "bad-time@import.test"), (17, "bad-rule@import.test"), (33, None)}
    # importing again updates, never duplicates
    again = api.post("/calendar/import", data=ICS_WITH_BAD_ROWS.encode(), headers=headers).json()
    assert (again["created"], again["updated"]) == (0, 2)
    occ = api.get(
        "/calendar/occurrences",
        params={
            "user_id": people.users["rep2"],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-10T00:00:00Z",
        },
    )
    titles = sorted(o["title"] for o in occ.json()["items"])
    assert titles == ["Good one", "Good two", "Good two", "Good two"]
    # not a calendar; too many events
    assert api.post("/calendar/import", data=b"hello", headers=headers).status_code == 422
    many = (
        "BEGIN:VCALENDAR\r\n"
        + "".join(
            f"BEGIN:VEVENT\r\nUID:n{i}\r\nDTSTART:20260101T000000Z\r\nEND:VEVENT\r\n"
            for i in range(2001)
        )
        + "END:VCALENDAR\r\n"
    )
    too_many = api.post("/calendar/import", data=many.encode(), headers=headers)
    assert too_many.status_code == 422 and "2001 events" in too_many.json()["error"]["message"]
    huge = api.post("/calendar/import", data=b"x" * (3 * 1024 * 1024), headers=headers)
    assert huge.status_code == 413
