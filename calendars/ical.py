"""iCalendar (RFC 5545) in and out: EventData to VCALENDAR text and back.

The only module that imports `icalendar`. Output carries a VTIMEZONE for every zone it
uses (so clients that do not know IANA names still place events right); input accepts
times in a named zone, in UTC, floating (read in the owner's zone) or whole days, and a
recurring event's moved instances (components with the same UID and a RECURRENCE-ID).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar

from calendars.model import (
    PARTSTATS,
    STATUSES,
    Attendee,
    CalendarError,
    EventData,
    Override,
    utc,
    zone,
)

PRODID = "-//fieldmesh//calendars//EN"
MAX_TEXT = 10_000  # a longer SUMMARY/DESCRIPTION/LOCATION is cut


# --------------------------------------------------------------------------- out


@functools.lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> icalendar.Timezone:
    return icalendar.Timezone.from_tzid(
        tzid, first_date=date(first_year, 1, 1), last_date=date(last_year, 12, 31)
    )


def _local(value: datetime, tz: str) -> datetime:
    return value.astimezone(zone(tz))


def _dt(value: datetime, tz: str, all_day: bool) -> date | datetime:
    if all_day:
        return _local(value, tz).date()
    if tz == "UTC":
        return value.astimezone(UTC)
    return _local(value, tz)


def _event_components(ev: EventData, stamp: datetime) -> list[icalendar.Event]:
    master = icalendar.Event()
    master.add("uid", ev.uid)
    master.add("dtstamp", stamp)
    master.add("dtstart", _dt(ev.start, ev.tz, ev.all_day))
    master.add("dtend", _dt(ev.end, ev.tz, ev.all_day))
    master.add("summary", ev.summary)
    if ev.description:
        master.add("description", ev.description)
    if ev.location:
        master.add("location", ev.location)
    master.add("status", ev.status)
    master.add("sequence", ev.sequence)
    if ev.transparent:
        master.add("transp", "TRANSPARENT")
    if ev.last_modified is not None:
        master.add("last-modified", ev.last_modified.astimezone(UTC))
    if ev.categories:
        master.add("categories", list(ev.categories))
    if ev.organizer:
        master.add("organizer", f"mailto:{ev.organizer}")
    for a in ev.attendees:
        params: dict[str, str] = {"PARTSTAT": a.partstat, "ROLE": a.role, "RSVP": "TRUE"}
        if a.name:
            params["CN"] = a.name
        master.add("attendee", f"mailto:{a.email}", parameters=params)
    out = [master]
    if ev.rrule:
        master.add("rrule", icalendar.vRecur.from_ical(ev.rrule))
        if ev.exdates:
            master.add("exdate", [_dt(d, ev.tz, ev.all_day) for d in sorted(ev.exdates)])
        for o in sorted(ev.overrides, key=lambda o: o.recurrence_id):
            inst = icalendar.Event()
            inst.add("uid", ev.uid)
            inst.add("dtstamp", stamp)
            inst.add("recurrence-id", _dt(o.recurrence_id, ev.tz, ev.all_day))
            inst.add("dtstart", _dt(o.start, ev.tz, ev.all_day))
            inst.add("dtend", _dt(o.end, ev.tz, ev.all_day))
            inst.add("summary", o.summary if o.summary is not None else ev.summary)
            inst.add("status", "CANCELLED" if o.cancelled else ev.status)
            inst.add("sequence", ev.sequence)
            out.append(inst)
    return out


def to_ics(
    events: Iterable[EventData],
    *,
    method: str | None = None,
    name: str | None = None,
    stamp: datetime | None = None,
) -> str:
    """One VCALENDAR with the events (for a CalDAV resource: one event and its
    instances), a VTIMEZONE per zone used, CRLF lines folded at 75 octets."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
    stamp = stamp or datetime.now(UTC)
    years: dict[str, tuple[int, int]] = {}
    for ev in events:
        for comp in _event_components(ev, stamp):
            cal.add_component(comp)
        if ev.tz != "UTC" and not ev.all_day:
            lo, hi = years.get(ev.tz, (9999, 0))
            last = ev.end.year + (10 if ev.rrule else 0)
            years[ev.tz] = (min(lo, ev.start.year - 1), max(hi, last))
    for tzid, (lo, hi) in sorted(years.items()):
        cal.subcomponents.insert(0, _vtimezone(tzid, lo, hi))
    text: str = cal.to_ical().decode("utf-8")
    return text


# --------------------------------------------------------------------------- in


def _text(comp: icalendar.Component, name: str) -> str:
    value = comp.get(name)
    if value is None:
        return ""
    return str(value)[:MAX_TEXT]


def _zone_name(value: datetime) -> str:
    tzinfo = value.tzinfo
    key = getattr(tzinfo, "key", None) or getattr(tzinfo, "zone", None)
    if isinstance(key, str):
        try:
            zone(key)
            return key
        except CalendarError:
            pass
    if tzinfo is not None and value.utcoffset() == timedelta(0):
        return "UTC"
    return "UTC"


def _when(value: Any, default_tz: str) -> tuple[datetime, str, bool]:
    """(UTC time, IANA zone, whole day) of a DTSTART/DTEND/RECURRENCE-ID value."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=zone(default_tz)).astimezone(UTC), default_tz, False
        return value.astimezone(UTC), _zone_name(value), False
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC), "UTC", True
    raise CalendarError(f"not a date or time: {value!r}")


def _decoded(comp: icalendar.Component, name: str) -> Any:
    try:
        return comp.decoded(name)
    except KeyError:
        return None
    except (ValueError, TypeError) as exc:
        raise CalendarError(f"{name}: {exc}") from None


def _attendees(comp: icalendar.Component) -> tuple[Attendee, ...]:
    raw = comp.get("attendee")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: dict[str, Attendee] = {}
    for item in items:
        addr = str(item)
        if addr.lower().startswith("mailto:"):
            addr = addr[7:]
        addr = addr.strip()
        if "@" not in addr or len(addr) > 320:
            continue
        params = getattr(item, "params", {})
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        out[addr.lower()] = Attendee(
            email=addr.lower(),
            name=str(params.get("CN", ""))[:200],
            partstat=partstat if partstat in PARTSTATS else "NEEDS-ACTION",
            role=str(params.get("ROLE", "REQ-PARTICIPANT")).upper()[:40],
        )
    return tuple(out.values())


def _exdates(comp: icalendar.Component, default_tz: str) -> tuple[datetime, ...]:
    raw = comp.get("exdate")
    if raw is None:
        return ()
    out: list[datetime] = []
    for group in raw if isinstance(raw, list) else [raw]:
        for item in getattr(group, "dts", []):
            out.append(_when(item.dt, default_tz)[0])
    return tuple(sorted(set(out)))


def _rrule(comp: icalendar.Component) -> str | None:
    raw = comp.get("rrule")
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = raw[0]  # more than one RRULE is deprecated (RFC 5545 3.8.5.3): the first
    text: str = raw.to_ical().decode("ascii")
    from calendars.recurrence import check_rrule

    check_rrule(text)
    return text


def _master(comp: icalendar.Component, default_tz: str) -> EventData:
    uid = _text(comp, "uid").strip()
    if not uid:
        raise CalendarError("VEVENT without a UID")
    if len(uid) > 500:
        raise CalendarError("UID longer than 500 characters")
    start_raw = _decoded(comp, "dtstart")
    if start_raw is None:
        raise CalendarError(f"event {uid}: no DTSTART")
    start, tz, all_day = _when(start_raw, default_tz)
    end_raw = _decoded(comp, "dtend")
    if end_raw is not None:
        end = _when(end_raw, default_tz)[0]
    else:
        duration = _decoded(comp, "duration")
        if isinstance(duration, timedelta):
            end = start + duration
        else:
            end = start + (timedelta(days=1) if all_day else timedelta(0))
    if end < start:
        raise CalendarError(f"event {uid}: DTEND before DTSTART")
    status = _text(comp, "status").upper() or "CONFIRMED"
    organizer = _text(comp, "organizer")
    if organizer.lower().startswith("mailto:"):
        organizer = organizer[7:]
    last_mod = _decoded(comp, "last-modified") or _decoded(comp, "dtstamp")
    seq = _decoded(comp, "sequence")
    return EventData(
        uid=uid,
        summary=_text(comp, "summary") or "(no title)",
        description=_text(comp, "description"),
        location=_text(comp, "location"),
        start=start,
        end=end,
        tz=tz,
        all_day=all_day,
        rrule=_rrule(comp),
        exdates=_exdates(comp, default_tz),
        status=status if status in STATUSES else "CONFIRMED",
        transparent=_text(comp, "transp").upper() == "TRANSPARENT",
        organizer=organizer.lower() or None,
        attendees=_attendees(comp),
        sequence=int(seq) if isinstance(seq, int) else 0,
        last_modified=utc(last_mod) if isinstance(last_mod, datetime) and last_mod.tzinfo else None,
    )


def _override(comp: icalendar.Component, master: EventData, default_tz: str) -> Override:
    rid, _, _ = _when(_decoded(comp, "recurrence-id"), master.tz or default_tz)
    start_raw = _decoded(comp, "dtstart")
    start = _when(start_raw, default_tz)[0] if start_raw is not None else rid
    end_raw = _decoded(comp, "dtend")
    end = (
        _when(end_raw, default_tz)[0]
        if end_raw is not None
        else start + (master.end - master.start)
    )
    if end < start:
        raise CalendarError(f"event {master.uid}: an instance ends before it starts")
    summary = _text(comp, "summary") or None
    return Override(
        recurrence_id=rid,
        start=start,
        end=end,
        summary=None if summary == master.summary else summary,
        cancelled=_text(comp, "status").upper() == "CANCELLED",
    )


def _assemble(comps: Sequence[icalendar.Component], default_tz: str) -> EventData:
    masters = [c for c in comps if c.get("recurrence-id") is None]
    if len(masters) > 1:
        raise CalendarError(
            f"event {_text(masters[0], 'uid')}: two components without RECURRENCE-ID"
        )
    if not masters:
        # only moved instances of an event we were not invited to as a whole: the first
        # instance stands for itself
        master = _master(comps[0], default_tz)
        return master
    master = _master(masters[0], default_tz)
    overrides = []
    cancelled = set(master.exdates)
    for c in comps:
        if c.get("recurrence-id") is None:
            continue
        o = _override(c, master, default_tz)
        if o.cancelled:
            cancelled.add(o.recurrence_id)
        else:
            overrides.append(o)
    from dataclasses import replace

    return replace(master, overrides=tuple(overrides), exdates=tuple(sorted(cancelled)))


def parse_calendar(text: str, default_tz: str = "UTC") -> list[EventData]:
    """Every event of a VCALENDAR (a CalDAV resource holds one UID and its instances)."""
    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError) as exc:
        raise CalendarError(f"not an iCalendar object: {exc}") from None
    by_uid: dict[str, list[icalendar.Component]] = {}
    for comp in cal.walk("VEVENT"):
        by_uid.setdefault(_text(comp, "uid").strip(), []).append(comp)
    return [_assemble(comps, default_tz) for comps in by_uid.values()]


def method_of(text: str) -> str | None:
    for line in text.splitlines()[:20]:
        if line.upper().startswith("METHOD:"):
            return line.split(":", 1)[1].strip().upper()
    return None


# --------------------------------------------------------------------------- import


@dataclass(frozen=True, slots=True)
class ImportProblem:
    line: int  # 1-based line of the VEVENT's BEGIN in the file
    uid: str | None
    message: str


def split_events(
    text: str,
) -> tuple[list[str], list[tuple[int, str, list[str]]], list[ImportProblem]]:
    """The file's VTIMEZONE blocks and its VEVENT blocks with their first line and UIDs,
    without parsing their content (so one bad event cannot hide the others)."""
    zones: list[str] = []
    events: list[tuple[int, str, list[str]]] = []
    problems: list[ImportProblem] = []
    block: list[str] | None = None
    kind = ""
    first = 0
    depth = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        upper = line.upper()
        if block is None:
            if upper in ("BEGIN:VEVENT", "BEGIN:VTIMEZONE"):
                block, kind, first, depth = [line], upper[6:], n, 1
            continue
        block.append(line)
        if upper.startswith("BEGIN:"):
            depth += 1
        elif upper.startswith("END:"):
            depth -= 1
            if depth == 0:
                if upper != f"END:{kind}":
                    problems.append(ImportProblem(first, None, f"{kind} not closed properly"))
                elif kind == "VTIMEZONE":
                    zones.append("\r\n".join(block))
                else:
                    uids = [
                        ln.split(":", 1)[1].strip() for ln in block if ln.upper().startswith("UID")
                    ]
                    events.append((first, "\r\n".join(block), uids))
                block = None
    if block is not None:
        problems.append(ImportProblem(first, None, f"{kind} not closed before the end of the file"))
    return zones, events, problems


def parse_one_block(zones: list[str], block: str, default_tz: str) -> list[icalendar.Component]:
    doc = "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", *zones, block, "END:VCALENDAR", ""]
    )
    try:
        cal = icalendar.Calendar.from_ical(doc)
    except (ValueError, KeyError, IndexError) as exc:
        raise CalendarError(f"unreadable event: {exc}") from None
    comps: list[icalendar.Component] = list(cal.walk("VEVENT"))
    # decode what the event needs now, so a bad value is this event's problem
    for c in comps:
        if c.get("recurrence-id") is None:
            _master(c, default_tz)
    return comps


def assemble(comps: Sequence[icalendar.Component], default_tz: str) -> EventData:
    return _assemble(comps, default_tz)
