"""The conflict rule (calendars.merge), pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from calendars.merge import merge
from calendars.model import Attendee, EventData

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
EARLY, LATE = T0, T0 + timedelta(hours=1)


def _c(**kw: Any) -> dict[str, Any]:
    base = {"uid": "u", "summary": "Review", "start": T0, "end": T0 + timedelta(hours=1)}
    return EventData(**{**base, **kw}).content()


def test_a_group_changed_on_one_side_takes_that_side() -> None:
    base = _c()
    local = _c(summary="Review (CRM)")
    remote = _c(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1))
    m = merge("activity", base, local, remote, EARLY, LATE)
    assert m.content["summary"] == "Review (CRM)"
    assert m.content["start"] == remote["start"] and m.content["end"] == remote["end"]
    assert m.local_changed and m.remote_changed


def test_both_sides_changed_one_group_the_later_writer_wins() -> None:
    base, local, remote = _c(), _c(summary="CRM title"), _c(summary="Phone title")
    assert merge("activity", base, local, remote, EARLY, LATE).content["summary"] == "Phone title"
    assert merge("activity", base, local, remote, LATE, EARLY).content["summary"] == "CRM title"
    # a tie goes to the CRM
    assert merge("activity", base, local, remote, LATE, LATE).content["summary"] == "CRM title"


def test_work_orders_visits_and_cadences_are_the_crms() -> None:
    base = _c()
    remote = _c(
        summary="moved on a phone",
        start=T0 + timedelta(days=2),
        end=T0 + timedelta(days=2, hours=1),
    )
    for kind in ("work_order", "visit", "cadence"):
        m = merge(kind, base, base, remote, EARLY, LATE)
        assert m.content == base and not m.local_changed and m.remote_changed


def test_an_attendees_reply_on_the_server_is_kept_for_crm_owned_events_too() -> None:
    base = _c(attendees=(Attendee("a@x.test"),))
    remote = _c(attendees=(Attendee("a@x.test", partstat="ACCEPTED"),))
    m = merge("work_order", base, base, remote, LATE, EARLY)
    assert m.content["attendees"] == remote["attendees"]


def test_without_a_base_the_server_copy_wins_for_activities() -> None:
    m = merge("activity", None, _c(summary="CRM"), _c(summary="Server"), LATE, EARLY)
    assert m.content["summary"] == "Server" and not m.remote_changed


def test_time_fields_move_together() -> None:
    base = _c()
    local = _c(end=T0 + timedelta(hours=3))
    remote = _c(start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=1))
    m = merge("activity", base, local, remote, EARLY, LATE)
    assert (m.content["start"], m.content["end"]) == (remote["start"], remote["end"])
