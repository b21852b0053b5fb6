"""A weekly meeting with one moved and one cancelled instance round-trips through the
embedded CalDAV server across a DST change, in both directions of the change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from psycopg import AsyncConnection

from calendars import service
from calendars.ical import parse_calendar, to_ics
from calendars.model import Override
from calendars.recurrence import occurrences
from calendars.sync import RoundStats
from identity.auth import load_principal
from tests.calendars.conftest import TENANT, Remote, run

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")


def _b(y: int, m: int, d: int, h: int = 10) -> datetime:
    """A wall-clock time in Berlin, as UTC."""
    return datetime(y, m, d, h, 0, tzinfo=BERLIN).astimezone(UTC)


# (first Monday, the DST switch between the 2nd and 3rd instance, UTC hour before, after)
CASES = [
    pytest.param((2026, 3, 16), 9, 8, id="spring-forward"),
    pytest.param((2026, 10, 12), 8, 9, id="fall-back"),
]


def _server_instances(text: str) -> list[tuple[datetime, str]]:
    cal = icalendar.Calendar.from_ical(text)
    out = []
    for comp in recurring_ical_events.of(cal).between(datetime(2026, 1, 1), datetime(2027, 1, 1)):
        if str(comp.get("STATUS", "")).upper() == "CANCELLED":
            continue
        out.append((comp.decoded("DTSTART").astimezone(UTC), str(comp.get("SUMMARY"))))
    return sorted(out)


@pytest.mark.parametrize(("first", "utc_before", "utc_after"), CASES)
def test_weekly_meeting_with_moved_and_cancelled_instances_round_trips_across_dst(
    db_dsn: str,
    make_user: Callable[..., int],
    sync: Callable[[int], RoundStats],
    remote: Callable[[int], Remote],
    first: tuple[int, int, int],
    utc_before: int,
    utc_after: int,
) -> None:
    user = make_user("Europe/Berlin")
    y, m, d = first
    start = _b(y, m, d)
    week = timedelta(days=7)
    cancelled = _b(y, m, d + 7)  # 2nd instance, before the switch
    moved_from = start + 3 * week  # 4th instance (after the switch; UTC of the wall time)
    moved_from = _b(*(moved_from.astimezone(BERLIN).timetuple()[:3]))
    moved_to = moved_from + timedelta(days=1, hours=4)  # Tuesday 14:00 Berlin

    async def create() -> int:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            p = await load_principal(conn, user)
            assert p is not None
            _, event_id = await service.create_event(
                conn,
                p,
                TENANT,
                service.EventInput(
                    subject="Weekly sync",
                    start=start,
                    end=start + timedelta(hours=1),
                    tz="Europe/Berlin",
                    rrule="FREQ=WEEKLY;COUNT=6",
                    exdates=(cancelled,),
                    overrides=(Override(moved_from, moved_to, moved_to + timedelta(hours=1)),),
                ),
            )
            return event_id

    event_id = run(create())
    sync(user)

    # the server's copy, expanded by an independent implementation
    srv = remote(user)
    ((href, (etag, text)),) = srv.objects().items()
    got = _server_instances(text)
    expected_local = [start + i * week for i in range(6)]
    expected = []
    for i, t in enumerate(expected_local):
        wall = _b(*(t.astimezone(BERLIN).timetuple()[:3]))
        if i == 1:
            continue  # cancelled
        if i == 3:
            expected.append((moved_to, "Weekly sync"))
            continue
        expected.append((wall, "Weekly sync"))
    assert got == sorted(expected)
    hours = [t.hour for t, _ in got if t != moved_to]
    assert hours[0] == utc_before and hours[-1] == utc_after  # 10:00 local on both sides

    # edited on the server: the 5th instance cancelled, the 6th moved to Wednesday 08:00
    (ev,) = parse_calendar(text)
    fifth = _b(*((start + 4 * week).astimezone(BERLIN).timetuple()[:3]))
    sixth = _b(*((start + 5 * week).astimezone(BERLIN).timetuple()[:3]))
    new_sixth = sixth + timedelta(days=2, hours=-2)
    edited = replace(
        ev,
        exdates=(*ev.exdates, fifth),
        overrides=(
            *ev.overrides,
            Override(sixth, new_sixth, new_sixth + timedelta(hours=1), "Moved by phone"),
        ),
        sequence=ev.sequence + 1,
        last_modified=datetime.now(UTC) + timedelta(seconds=5),
    )
    srv.put(href, to_ics([edited]), etag)
    stats = sync(user)
    assert stats.pulled_changed == 1

    async def busy() -> list[tuple[datetime, str]]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            occ = await occurrences(conn, [user], start - week, start + 10 * week)
            assert {o.event_id for o in occ} == {event_id}
            return [(o.start, o.title) for o in occ]

    assert run(busy()) == sorted(
        [
            (start, "Weekly sync"),
            (_b(*((start + 2 * week).astimezone(BERLIN).timetuple()[:3])), "Weekly sync"),
            (moved_to, "Weekly sync"),
            (new_sixth, "Moved by phone"),
        ]
    )
    # and the fieldmesh side still round-trips: nothing to push, the server unchanged
    assert sync(user).pushed == 0
    ((_, (_, text2)),) = srv.objects().items()
    assert _server_instances(text2) == sorted(run(busy()))
