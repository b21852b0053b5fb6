"""The slot finder, pure: working hours, busy time and travel in; ranked slots out.

No I/O and no clock: `calendars.busy` gathers busy time from the database, the routes
call `find_slots`. Every time is an aware UTC datetime; working hours are local wall-clock
times in the attendee's IANA zone, turned into UTC day by day, so a DST change moves the
UTC window and never the local one (09:00-17:00 stays 09:00-17:00 local on both sides).
A local time that does not exist (the hour skipped in spring) starts at the first instant
after the gap; a repeated one (autumn) is read at its first occurrence.

The search: each attendee's free time is their working windows minus their busy time;
the attendees' free times are intersected, then each resource's (a resource of capacity N
is busy where N of its bookings overlap). For an on-site meeting (a site location) each
free gap of each attendee shrinks by the travel from the appointment before it (or the
attendee's home at the start of the day) to the site, and from the site to the one after
it. Candidate starts lie on a `step_min` grid inside the common gaps. Cost is linear in
busy items plus candidates, not in minutes (`naive_slots` is the minute-by-minute scan the
benchmark compares against, and the tests check both give the same answer).

Ranking: `earliest` orders by start; `best` scores each slot by added driving, the unusable
fragments it leaves (a slot that fills a gap exactly, or sits flush against another
appointment, scores better) and a small penalty for lateness, and says why.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]
Point = tuple[float, float]  # (lon, lat)
Mode = Literal["earliest", "best"]


@dataclass(frozen=True, slots=True)
class WorkDay:
    """Working time on one weekday (Monday 0), local wall clock; end may be 24:00 as time.max."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Busy:
    start: datetime
    end: datetime
    kind: str  # meeting | visit | work_order | booking | driving | event
    title: str = ""
    ref: str = ""  # e.g. "activity:12", "stop:4:acct-7", "booking:3"
    location: Point | None = None


@dataclass(frozen=True, slots=True)
class Attendee:
    user_id: int
    tz: str
    week: tuple[WorkDay, ...]
    busy: tuple[Busy, ...]
    home: Point | None = None


@dataclass(frozen=True, slots=True)
class ResourceLoad:
    resource_id: int
    capacity: int
    booked: tuple[Interval, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime
    score: float
    reasons: tuple[str, ...]
    travel_s: float = 0.0  # driving added for the attendees, summed


# Travel time in seconds and road distance in metres between two points.
Travel = Callable[[Point, Point], tuple[float, float]]


# --------------------------------------------------------------------------- intervals


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, touching intervals joined."""
    out: list[Interval] = []
    for s, e in sorted(i for i in intervals if i[0] < i[1]):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def subtract(base: Sequence[Interval], cut: Sequence[Interval]) -> list[Interval]:
    """`base` minus `cut`; both merged and sorted."""
    out: list[Interval] = []
    j = 0
    for s, e in base:
        cur = s
        while j < len(cut) and cut[j][1] <= cur:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < e:
            cs, ce = cut[k]
            if cs > cur:
                out.append((cur, cs))
            cur = max(cur, ce)
            if cur >= e:
                break
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        s = max(a[i][0], b[j][0])
        e = min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def saturated(booked: Sequence[Interval], capacity: int) -> list[Interval]:
    """Where at least `capacity` of the intervals overlap (the resource is full)."""
    events: list[tuple[datetime, int]] = []
    for s, e in booked:
        if s < e:
            events.append((s, 1))
            events.append((e, -1))
    events.sort(key=lambda x: (x[0], x[1]))  # ends before starts at the same instant
    out: list[Interval] = []
    depth = 0
    full_since: datetime | None = None
    for t, d in events:
        depth += d
        if depth >= capacity and full_since is None:
            full_since = t
        elif depth < capacity and full_since is not None:
            if full_since < t:
                out.append((full_since, t))
            full_since = None
    return merge(out)


# --------------------------------------------------------------------------- working hours


def local_to_utc(day: date, t: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as UTC; a time in a spring-forward gap moves past the gap."""
    naive = datetime.combine(day, t)
    aware = naive.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:  # does not exist locally
        utc = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        later = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        utc = max(utc, later)
    return utc


def working_windows(
    week: Sequence[WorkDay], tz: str, start: datetime, end: datetime
) -> list[Interval]:
    """The UTC intervals of working time between `start` and `end`."""
    zone = ZoneInfo(tz)
    by_day: dict[int, list[WorkDay]] = {}
    for w in week:
        by_day.setdefault(w.weekday, []).append(w)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out: list[Interval] = []
    day = first
    while day <= last:
        for w in by_day.get(day.weekday(), ()):
            s = local_to_utc(day, w.start, zone)
            e = (
                local_to_utc(day + timedelta(days=1), time(0), zone)
                if w.end == time.max
                else local_to_utc(day, w.end, zone)
            )
            s, e = max(s, start), min(e, end)
            if s < e:
                out.append((s, e))
        day += timedelta(days=1)
    return merge(out)


# --------------------------------------------------------------------------- the finder


@dataclass(slots=True)
class _Gap:
    """A free stretch of one attendee with what bounds it (for travel and reasons)."""

    start: datetime
    end: datetime
    prev: Busy | None
    next: Busy | None
    prev_loc: Point | None = None
    next_loc: Point | None = None
    travel_in_s: float = 0.0
    travel_out_s: float = 0.0
    prev_next_m: float | None = None  # road distance between the appointments around it
    prev_next_s: float = 0.0  # the drive between them that the meeting replaces


@dataclass(frozen=True, slots=True)
class Query:
    attendees: tuple[Attendee, ...]
    resources: tuple[ResourceLoad, ...]
    start: datetime
    end: datetime
    duration: timedelta
    step: timedelta = timedelta(minutes=15)
    site: Point | None = None
    mode: Mode = "earliest"
    limit: int = 10
    now: datetime | None = None  # no slot starts before this
    extra: dict[str, float] = field(default_factory=dict)


_SAME_TRIP = timedelta(hours=4)


def _gaps(att: Attendee, q: Query, travel: Travel | None) -> list[_Gap]:
    windows = working_windows(att.week, att.tz, q.start, q.end)
    busy = sorted(att.busy, key=lambda b: (b.start, b.end))
    busy_iv = merge((b.start, b.end) for b in busy)
    free = subtract(windows, busy_iv)
    by_end = sorted(busy, key=lambda b: (b.end, b.start))
    ends = [b.end for b in by_end]
    starts = [b.start for b in busy]
    out: list[_Gap] = []
    for s, e in free:
        # the appointment ending last at or before s (if within the last few hours: after
        # that the attendee starts from home), and the first one starting at or after e
        i = bisect.bisect_right(ends, s) - 1
        prev = by_end[i] if i >= 0 and s - by_end[i].end <= _SAME_TRIP else None
        j = bisect.bisect_left(starts, e)
        nxt = busy[j] if j < len(busy) and busy[j].start - e <= _SAME_TRIP else None
        gap = _Gap(s, e, prev, nxt)
        if q.site is not None and travel is not None:
            gap.prev_loc = prev.location if prev is not None else att.home
            gap.next_loc = nxt.location if nxt is not None else None
            if gap.prev_loc is not None:
                gap.travel_in_s = travel(gap.prev_loc, q.site)[0]
            if gap.next_loc is not None:
                gap.travel_out_s = travel(q.site, gap.next_loc)[0]
            if prev is not None and nxt is not None and prev.location and nxt.location:
                gap.prev_next_s, gap.prev_next_m = travel(prev.location, nxt.location)
            gap.start = s + timedelta(seconds=math.ceil(gap.travel_in_s))
            gap.end = e - timedelta(seconds=math.ceil(gap.travel_out_s))
        if gap.start < gap.end:
            out.append(gap)
    return out


def _align(t: datetime, origin: datetime, step: timedelta) -> datetime:
    """The first grid point (origin + k*step) at or after t."""
    k = math.ceil((t - origin) / step)
    return origin + k * step


def find_slots(q: Query, travel: Travel | None = None) -> list[Slot]:
    """The `limit` best (or earliest) slots for every attendee and resource at once."""
    if q.duration <= timedelta(0) or q.step <= timedelta(0):
        raise ValueError("duration and step must be positive")
    start = max(q.start, q.now) if q.now is not None else q.start
    per_att = [_gaps(a, q, travel) for a in q.attendees]
    common: list[Interval] = [(start, q.end)]
    for gaps in per_att:
        common = intersect(common, [(g.start, g.end) for g in gaps])
    for r in q.resources:
        common = subtract(common, saturated(r.booked, r.capacity))
    origin = q.start.replace(minute=0, second=0, microsecond=0)
    cands: list[tuple[datetime, datetime, datetime]] = []  # slot start, common gap bounds
    for s, e in common:
        t = _align(s, origin, q.step)
        while t + q.duration <= e:
            cands.append((t, s, e))
            if q.mode == "earliest" and len(cands) >= q.limit:
                break
            t += q.step
        if q.mode == "earliest" and len(cands) >= q.limit:
            break
    gap_index = [([g.start for g in gaps], gaps) for gaps in per_att]
    slots = [_rank(t, t + q.duration, q, gap_index, i == 0) for i, (t, _s, _e) in enumerate(cands)]
    if q.mode == "best":
        slots.sort(key=lambda sl: (sl.score, sl.start))
    return slots[: q.limit]


def _gap_of(index: tuple[list[datetime], list[_Gap]], t: datetime) -> _Gap | None:
    starts, gaps = index
    i = bisect.bisect_right(starts, t) - 1
    return gaps[i] if i >= 0 and gaps[i].end >= t else None


def _rank(
    s: datetime,
    e: datetime,
    q: Query,
    gap_index: list[tuple[list[datetime], list[_Gap]]],
    first: bool,
) -> Slot:
    reasons: list[str] = []
    if first:
        reasons.append("first free slot")
    travel_s = 0.0
    waste_s = 0.0
    between: float | None = None
    for idx in gap_index:
        g = _gap_of(idx, s)
        if g is None:
            continue
        # the detour: to the site and on, less the drive it replaces
        travel_s += max(g.travel_in_s + g.travel_out_s - g.prev_next_s, 0.0)
        before = (s - g.start).total_seconds()
        after = (g.end - e).total_seconds()
        # a leftover under 30 minutes is time no one can use
        waste_s += sum(x for x in (before, after) if 0 < x < 1800)
        if g.prev_next_m is not None and (between is None or g.prev_next_m < between):
            between = g.prev_next_m
    if between is not None:
        reasons.append(f"fits between two visits {between / 1000:.0f} km apart")
    if q.site is not None:
        if travel_s > 0:
            reasons.append(f"adds {travel_s / 60:.0f} min of driving")
        else:
            reasons.append("no driving before or after")
    if waste_s == 0 and gap_index:
        reasons.append("leaves no unusable gap")
    late_h = (s - q.start).total_seconds() / 3600.0
    score = travel_s / 60.0 + waste_s / 120.0 + late_h * 0.25
    return Slot(s, e, round(score, 3), tuple(reasons), travel_s)


# --------------------------------------------------------------------------- baseline


def naive_slots(q: Query, travel: Travel | None = None) -> list[datetime]:
    """The minute-by-minute scan (no travel): a bitmap of free minutes per attendee and a
    count of booked units per minute per resource, then every grid start whose minutes
    are all free. The benchmark's baseline and the tests' reference (earliest only)."""
    start = max(q.start, q.now) if q.now is not None else q.start
    origin = q.start.replace(minute=0, second=0, microsecond=0)
    n = int((q.end - origin).total_seconds() // 60) + 1

    def minute(t: datetime) -> int:
        return min(max(int((t - origin).total_seconds() // 60), 0), n)

    def minute_up(t: datetime) -> int:
        return min(max(math.ceil((t - origin).total_seconds() / 60), 0), n)

    free = [True] * n
    for a in q.attendees:
        working = [False] * n
        for ws, we in working_windows(a.week, a.tz, q.start, q.end):
            for m in range(minute_up(ws), minute(we)):
                working[m] = True
        for b in a.busy:
            for m in range(minute(b.start), minute_up(b.end)):
                working[m] = False
        free = [f and w for f, w in zip(free, working, strict=True)]
    for r in q.resources:
        used = [0] * n
        for bs, be in r.booked:
            for m in range(minute(bs), minute_up(be)):
                used[m] += 1
        free = [f and u < r.capacity for f, u in zip(free, used, strict=True)]
    out: list[datetime] = []
    length = int(q.duration.total_seconds() // 60)
    t = _align(start, origin, q.step)
    while t + q.duration <= q.end and len(out) < q.limit:
        m0 = minute(t)
        if all(free[m0 : m0 + length]):
            out.append(t)
        t += q.step
    return out
