"""Calendar events as pure values: what fieldmesh and a CalDAV server exchange.

Times are aware datetimes in UTC; `tz` is the event's IANA zone, in which a recurring
event expands (its wall-clock time stays put across a DST change). `content()` is the
comparable, JSON-able form that the sync stores as the common ancestor (`base`) of its
three-way merge, grouped in the fields the conflict rule decides one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PARTSTATS = ("NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED")
STATUSES = ("CONFIRMED", "TENTATIVE", "CANCELLED")

# The fields the conflict rule decides independently; the time fields move together so
# that a merge never takes the start from one side and the end from the other.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "summary": ("summary",),
    "description": ("description",),
    "location": ("location",),
    "time": ("start", "end", "tz", "all_day"),
    "recurrence": ("rrule", "exdates", "overrides"),
    "status": ("status",),
    "attendees": ("attendees",),
}


class CalendarError(ValueError):
    """Bad calendar data (an ICS object, an RRULE, a time zone): the input's fault."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r}") from None


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise CalendarError(f"time without a zone: {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""
    partstat: str = "NEEDS-ACTION"
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True, slots=True)
class Override:
    """One instance of a recurring event moved or changed (RECURRENCE-ID), or cancelled."""

    recurrence_id: datetime  # the instance's original start, UTC
    start: datetime
    end: datetime
    summary: str | None = None
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class EventData:
    uid: str
    summary: str
    start: datetime
    end: datetime
    tz: str = "UTC"
    description: str = ""
    location: str = ""
    all_day: bool = False
    rrule: str | None = None  # "FREQ=WEEKLY;BYDAY=MO", no "RRULE:" prefix
    exdates: tuple[datetime, ...] = ()
    overrides: tuple[Override, ...] = ()
    status: str = "CONFIRMED"
    transparent: bool = False
    organizer: str | None = None
    attendees: tuple[Attendee, ...] = ()
    sequence: int = 0
    last_modified: datetime | None = None
    categories: tuple[str, ...] = field(default=())

    def content(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "description": self.description,
            "location": self.location,
            "start": self.start.astimezone(UTC).isoformat(),
            "end": self.end.astimezone(UTC).isoformat(),
            "tz": self.tz,
            "all_day": self.all_day,
            "rrule": self.rrule,
            "exdates": sorted(d.astimezone(UTC).isoformat() for d in self.exdates),
            "overrides": sorted(
                [
                    o.recurrence_id.astimezone(UTC).isoformat(),
                    o.start.astimezone(UTC).isoformat(),
                    o.end.astimezone(UTC).isoformat(),
                    o.summary,
                    o.cancelled,
                ]
                for o in self.overrides
            ),
            "status": self.status,
            "attendees": sorted(
                [a.email.lower(), a.name, a.partstat, a.role] for a in self.attendees
            ),
        }


def from_content(uid: str, c: dict[str, Any], **extra: Any) -> EventData:
    """The inverse of `EventData.content` (for a merged result)."""
    return EventData(
        uid=uid,
        summary=c["summary"],
        description=c["description"],
        location=c["location"],
        start=datetime.fromisoformat(c["start"]),
        end=datetime.fromisoformat(c["end"]),
        tz=c["tz"],
        all_day=bool(c["all_day"]),
        rrule=c["rrule"],
        exdates=tuple(datetime.fromisoformat(x) for x in c["exdates"]),
        overrides=tuple(
            Override(
                datetime.fromisoformat(o[0]),
                datetime.fromisoformat(o[1]),
                datetime.fromisoformat(o[2]),
                o[3],
                bool(o[4]),
            )
            for o in c["overrides"]
        ),
        status=c["status"],
        attendees=tuple(Attendee(a[0], a[1], a[2], a[3]) for a in c["attendees"]),
        **extra,
    )


def with_content(event: EventData, c: dict[str, Any]) -> EventData:
    merged = from_content(event.uid, c)
    return replace(
        merged,
        transparent=event.transparent,
        organizer=event.organizer,
        sequence=event.sequence,
        last_modified=event.last_modified,
        categories=event.categories,
    )
