"""The slot finder's pure core: working hours across DST in two zones, busy time,
resources with capacity, travel between appointments, ranking reasons, and agreement with
the minute-by-minute scan on random calendars."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

from calendars.slots import (
    Attendee,
    Busy,
    Query,
    ResourceLoad,
    WorkDay,
    find_slots,
    naive_slots,
    saturated,
    subtract,
    working_windows,
)

NINE_TO_FIVE = tuple(WorkDay(d, time(9), time(17)) for d in range(5))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_working_hours_follow_local_time_across_both_dst_changes() -> None:
    # New York springs forward on Sunday 2026-03-08: 09:00 local is 14:00 UTC before, 13:00 after
    before = working_windows(NINE_TO_FIVE, "America/New_York", utc(2026, 3, 6), utc(2026, 3, 7))
    after = working_windows(NINE_TO_FIVE, "America/New_York", utc(2026, 3, 9), utc(2026, 3, 10))
    assert before == [(utc(2026, 3, 6, 14), utc(2026, 3, 6, 22))]
    assert after == [(utc(2026, 3, 9, 13), utc(2026, 3, 9, 21))]
    # Berlin falls back on Sunday 2026-10-25: 09:00 local is 07:00 UTC before, 08:00 after
    before = working_windows(NINE_TO_FIVE, "Europe/Berlin", utc(2026, 10, 23), utc(2026, 10, 24))
    after = working_windows(NINE_TO_FIVE, "Europe/Berlin", utc(2026, 10, 26), utc(2026, 10, 27))
    assert before == [(utc(2026, 10, 23, 7), utc(2026, 10, 23, 15))]
    assert after == [(utc(2026, 10, 26, 8), utc(2026, 10, 26, 16))]


def test_a_meeting_of_two_zones_lands_in_the_overlap_of_their_days() -> None:
    ny = Attendee(1, "America/New_York", NINE_TO_FIVE, ())
    berlin = Attendee(2, "Europe/Berlin", NINE_TO_FIVE, ())
    q = Query((ny, berlin), (), utc(2026, 12, 7), utc(2026, 12, 8), timedelta(hours=1), limit=50)
    slots = find_slots(q)
    # NY 09:00-17:00 = 14:00-22:00 UTC; Berlin 09:00-17:00 = 08:00-16:00 UTC: overlap 14-16
    assert [s.start for s in slots] == [
        utc(2026, 12, 7, 14),
        utc(2026, 12, 7, 14, 15),
        utc(2026, 12, 7, 14, 30),
        utc(2026, 12, 7, 14, 45),
        utc(2026, 12, 7, 15),
    ]
    assert "first free slot" in slots[0].reasons


def test_busy_time_and_full_resources_are_avoided() -> None:
    day = utc(2026, 12, 7)
    a = Attendee(
        1, "UTC", NINE_TO_FIVE, (Busy(utc(2026, 12, 7, 9), utc(2026, 12, 7, 10, 30), "meeting"),)
    )
    room = ResourceLoad(7, 1, ((utc(2026, 12, 7, 10, 30), utc(2026, 12, 7, 12)),))
    q = Query((a,), (room,), day, day + timedelta(days=1), timedelta(minutes=30), limit=1)
    assert find_slots(q)[0].start == utc(2026, 12, 7, 12)
    # capacity 2: one booking leaves a unit free
    room2 = ResourceLoad(7, 2, room.booked)
    q2 = Query((a,), (room2,), day, day + timedelta(days=1), timedelta(minutes=30), limit=1)
    assert find_slots(q2)[0].start == utc(2026, 12, 7, 10, 30)


def test_saturation_counts_concurrent_bookings_against_capacity() -> None:
    b = [(utc(2026, 1, 1, 9), utc(2026, 1, 1, 11)), (utc(2026, 1, 1, 10), utc(2026, 1, 1, 12))]
    assert saturated(b, 2) == [(utc(2026, 1, 1, 10), utc(2026, 1, 1, 11))]
    assert saturated(b, 1) == [(utc(2026, 1, 1, 9), utc(2026, 1, 1, 12))]
    assert subtract([(utc(2026, 1, 1, 8), utc(2026, 1, 1, 13))], saturated(b, 2)) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 10)),
        (utc(2026, 1, 1, 11), utc(2026, 1, 1, 13)),
    ]


def test_travel_from_the_previous_and_to_the_next_visit_is_kept_free() -> None:
    far, site, near = (0.0, 0.0), (1.0, 0.0), (1.02, 0.0)

    def travel(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        km = abs(a[0] - b[0]) * 111
        return km * 60.0, km * 1000.0  # a minute per km

    visits = (
        Busy(utc(2026, 12, 7, 9), utc(2026, 12, 7, 10), "visit", "A", "v1", far),
        Busy(utc(2026, 12, 7, 12), utc(2026, 12, 7, 13), "visit", "B", "v2", near),
    )
    a = Attendee(1, "UTC", NINE_TO_FIVE, visits)
    q = Query(
        (a,), (), utc(2026, 12, 7), utc(2026, 12, 8), timedelta(minutes=30), site=site, limit=3
    )
    slots = find_slots(q, travel)
    # 111 km from A: free from 11:51, first grid point 12:00 is taken by B; so after B
    assert slots[0].start >= utc(2026, 12, 7, 10) + timedelta(minutes=111)
    without = find_slots(Query((a,), (), q.start, q.end, q.duration, limit=1))
    assert without[0].start == utc(2026, 12, 7, 10)
    # ranking: a slot between two nearby visits says so
    visits2 = (
        Busy(utc(2026, 12, 7, 9), utc(2026, 12, 7, 10), "visit", "A", "v1", near),
        Busy(utc(2026, 12, 7, 11), utc(2026, 12, 7, 12), "visit", "B", "v2", near),
        Busy(utc(2026, 12, 7, 12), utc(2026, 12, 7, 17), "meeting", "office", "m1"),
    )
    b = Attendee(1, "UTC", NINE_TO_FIVE, visits2)
    best = find_slots(
        Query((b,), (), q.start, q.end, timedelta(minutes=30), site=site, mode="best", limit=1),
        travel,
    )[0]
    assert any(r.startswith("fits between two visits 0 km apart") for r in best.reasons)
    assert utc(2026, 12, 7, 10) < best.start < utc(2026, 12, 7, 11)


def test_fast_finder_agrees_with_the_minute_scan_on_random_calendars() -> None:
    rng = random.Random(7)
    for _ in range(30):
        start = utc(2026, 12, 7)
        end = start + timedelta(days=3)
        people = []
        for uid in range(rng.randint(1, 3)):
            tz = rng.choice(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
            busy = []
            for _ in range(rng.randint(0, 12)):
                s = start + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 5))
                busy.append(
                    Busy(s, s + timedelta(minutes=rng.choice([15, 30, 45, 60, 90])), "meeting")
                )
            people.append(Attendee(uid, tz, NINE_TO_FIVE, tuple(busy)))
        res = []
        for rid in range(rng.randint(0, 2)):
            bk = []
            for _ in range(rng.randint(0, 8)):
                s = start + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 15))
                bk.append((s, s + timedelta(minutes=rng.choice([30, 60, 120]))))
            res.append(ResourceLoad(rid, rng.randint(1, 2), tuple(bk)))
        q = Query(
            tuple(people),
            tuple(res),
            start,
            end,
            timedelta(minutes=rng.choice([15, 30, 60])),
            limit=20,
            mode="earliest",
        )
        assert [s.start for s in find_slots(q)] == naive_slots(q)
