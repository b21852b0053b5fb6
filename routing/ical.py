"""A rep's planned day as an iCalendar (RFC 5545) feed: one VEVENT per stop and one for
the lunch break. Times are UTC; lines are CRLF-terminated and folded at 75 octets."""

from __future__ import annotations

from datetime import UTC, datetime

from routing.model import Plan, Problem


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return [line]
    out: list[str] = []
    chunk = b""
    limit = 75
    for ch in line:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > limit:
            out.append(chunk.decode("utf-8"))
            chunk = b""
            limit = 74  # continuation lines start with a space
        chunk += b
    out.append(chunk.decode("utf-8"))
    return [out[0], *[" " + x for x in out[1:]]]


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def rep_calendar(
    problem: Problem, plan: Plan, rep_id: str, plan_id: str, stamp: datetime | None = None
) -> str:
    """The .ics text for one rep's route in a plan."""
    locs = {loc.id: loc for loc in problem.locations}
    visits = {v.id: v for v in problem.visits}
    dtstamp = _ts(stamp or datetime.now(UTC))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//fieldmesh//routing//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_escape(f'fieldmesh plan {plan_id} for {rep_id}')}",
    ]
    for route in plan.routes:
        if route.rep_id != rep_id:
            continue
        for seq, stop in enumerate(route.stops, start=1):
            visit = visits.get(stop.visit_id)
            loc = locs[stop.location_id]
            title = visit.title if visit and visit.title else f"Visit {stop.visit_id}"
            desc = (
                f"Stop {seq}. ETA {problem.at(stop.arrival_s):%H:%M} UTC, "
                f"travel {stop.travel_s / 60:.0f} min ({stop.distance_m / 1000:.1f} km), slack {stop.slack_s / 60:.0f} min."
            )
            lines += [
                "BEGIN:VEVENT",
                f"UID:{_escape(f'{plan_id}-{stop.visit_id}')}@fieldmesh",
                f"DTSTAMP:{dtstamp}",
                f"DTSTART:{_ts(problem.at(stop.service_start_s))}",
                f"DTEND:{_ts(problem.at(stop.service_end_s))}",
                f"SUMMARY:{_escape(f'{seq}. {title}')}",
                f"DESCRIPTION:{_escape(desc)}",
                f"LOCATION:{loc.lat:.6f}\\,{loc.lon:.6f}",
                f"GEO:{loc.lat:.6f};{loc.lon:.6f}",
                "END:VEVENT",
            ]
        if route.lunch_break is not None:
            lines += [
                "BEGIN:VEVENT",
                f"UID:{_escape(f'{plan_id}-{rep_id}-break')}@fieldmesh",
                f"DTSTAMP:{dtstamp}",
                f"DTSTART:{_ts(problem.at(route.lunch_break.start_s))}",
                f"DTEND:{_ts(problem.at(route.lunch_break.end_s))}",
                "SUMMARY:Lunch break",
                "TRANSP:TRANSPARENT",
                "END:VEVENT",
            ]
    lines.append("END:VCALENDAR")
    return "".join(f"{x}\r\n" for line in lines for x in _fold(line))
