"""Recurrence expansion (calendars.recurrence) and iCalendar round trips, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from calendars.ical import parse_calendar, to_ics
from calendars.model import Attendee, CalendarError, EventData, Override
from calendars.recurrence import check_rrule, expand

NY = ZoneInfo("America/New_York")
SYD = ZoneInfo("Australia/Sydney")


def _wall(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz).astimezone(UTC)


def test_daily_standup_keeps_its_wall_clock_time_across_both_dst_changes() -> None:
    start = _wall(NY, 2026, 3, 6, 9, 0)  # US DST starts 8 March, ends 1 November
    ev = EventData(
        uid="d",
        summary="Stand-up",
        start=start,
        end=start + timedelta(minutes=15),
        tz="America/New_York",
        rrule="FREQ=WEEKLY;BYDAY=FR;UNTIL=20261231T000000Z",
    )
    got = expand(ev, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert {i.start.astimezone(NY).hour for i in got} == {9}
    assert {i.start.hour for i in got} == {13, 14}  # UTC: 14:00 in winter, 13:00 in summer
    assert got[0].start == _wall(NY, 2026, 3, 6, 9, 0) and got[0].start.hour == 14
    assert got[1].start.hour == 13  # the first Friday after the switch


def test_southern_hemisphere_switches_the_other_way() -> None:
    start = _wall(SYD, 2026, 3, 30, 10, 0)  # Sydney leaves DST on 5 April 2026
    ev = EventData(
        uid="s",
        summary="x",
        start=start,
        end=start + timedelta(hours=1),
        tz="Australia/Sydney",
        rrule="FREQ=WEEKLY;COUNT=2",
    )
    a, b = expand(ev, start - timedelta(days=1), start + timedelta(days=30))
    assert (a.start.hour, b.start.hour) == (23, 0)  # 10:00 local: UTC+11, then UTC+10


def test_exdates_and_moved_instances_and_the_window() -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    moved_from = start + timedelta(days=14)
    moved_to = datetime(2026, 2, 20, 9, tzinfo=UTC)  # moved out of its week, into another window
    ev = EventData(
        uid="w",
        summary="W",
        start=start,
        end=start + timedelta(hours=1),
        tz="UTC",
        rrule="FREQ=WEEKLY;COUNT=4",
        exdates=(start + timedelta(days=7),),
        overrides=(Override(moved_from, moved_to, moved_to + timedelta(hours=1), "moved"),),
    )
    inside = expand(ev, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert [i.start.day for i in inside] == [5, 26]
    later = expand(ev, datetime(2026, 2, 15, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert [(i.start, i.summary, i.moved) for i in later] == [(moved_to, "moved", True)]


def test_bad_rules_are_refused() -> None:
    for bad in ("FREQ=SECONDLY", "FREQ=WEEKLY;BYDAY=XX", "COUNT=3", "x" * 600):
        with pytest.raises(CalendarError):
            check_rrule(bad)


def test_ics_round_trip_keeps_zone_recurrence_and_attendees() -> None:
    start = _wall(NY, 2026, 10, 30, 15, 0)
    ev = EventData(
        uid="r@x",
        summary="Review; with, commas",
        description="line 1\nline 2",
        location="Room 4",
        start=start,
        end=start + timedelta(hours=1),
        tz="America/New_York",
        rrule="FREQ=WEEKLY;COUNT=3",
        exdates=(start + timedelta(days=7),),
        attendees=(Attendee("ann@x.test", "Ann", "ACCEPTED"),),
        organizer="me@x.test",
    )
    text = to_ics([ev])
    assert "BEGIN:VTIMEZONE" in text and "DTSTART;TZID=America/New_York:20261030T150000" in text
    (back,) = parse_calendar(text)
    assert back.content() == ev.content()
    assert back.organizer == "me@x.test"


def test_floating_and_all_day_times() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
        "BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20260701T090000\r\nDTEND:20260701T100000\r\nSUMMARY:f\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260702\r\nSUMMARY:d\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    f, d = sorted(
        parse_calendar(text, default_tz="Europe/Berlin"), key=lambda e: e.uid, reverse=True
    )
    assert f.start == datetime(2026, 7, 1, 7, tzinfo=UTC) and f.tz == "Europe/Berlin"
    assert d.all_day and d.end - d.start == timedelta(days=1)
