"""The conflict rule of the two-way sync, as one pure function.

When the server's copy of an event changed since the last sync (its ETag moved), the sync
merges three versions: `base` (what both sides agreed on last time), `local` (fieldmesh's
now) and `remote` (the server's now), field group by field group (model.FIELD_GROUPS):

- a group only one side changed takes that side's value;
- a group both sides changed to different values goes to the later writer: the server
  copy's LAST-MODIFIED against the CRM record's `updated_at` (ties go to the CRM);
- events of work orders, planned visits and visit cadences are the CRM's: the CRM wins
  every group. A work order's appointment was promised to a customer and planned by a
  dispatcher or by routing against travel times and other stops; a drag in a phone's
  calendar must not silently move it, so the server copy is overwritten at the next push
  (the rep changes the appointment through the work order instead);
- attendees' replies (PARTSTAT) arrive through the server, so for an attendee both sides
  know, a reply in the server copy is kept unless the CRM side changed that attendee.

Without a base (first contact: the server already had the UID), the remote copy wins
for activities and the CRM for the other kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from calendars.model import FIELD_GROUPS

CRM_OWNED_KINDS = ("work_order", "visit", "cadence")


@dataclass(frozen=True, slots=True)
class MergeResult:
    content: dict[str, Any]
    local_changed: bool  # the CRM side must take the result
    remote_changed: bool  # the server copy must be rewritten
    decisions: dict[str, str]  # group -> "local" | "remote" | "same"


def _group(c: dict[str, Any], group: str) -> tuple[Any, ...]:
    return tuple(c.get(f) for f in FIELD_GROUPS[group])


def _merge_attendees(base: list[Any], local: list[Any], remote: list[Any]) -> list[Any]:
    b = {a[0]: a for a in base}
    r = {a[0]: a for a in remote}
    out = []
    for a in local:
        email = a[0]
        if email in r and b.get(email) == a and r[email] != a:
            out.append(r[email])  # only the server side moved: the attendee's reply
        else:
            out.append(a)
    return sorted(out)


def merge(
    kind: str,
    base: dict[str, Any] | None,
    local: dict[str, Any],
    remote: dict[str, Any],
    local_updated_at: datetime | None,
    remote_modified_at: datetime | None,
) -> MergeResult:
    crm_owned = kind in CRM_OWNED_KINDS
    result: dict[str, Any] = dict(local)
    decisions: dict[str, str] = {}
    remote_later = (
        remote_modified_at is not None
        and local_updated_at is not None
        and remote_modified_at > local_updated_at
    )
    for group, fields in FIELD_GROUPS.items():
        lv, rv = _group(local, group), _group(remote, group)
        if lv == rv:
            decisions[group] = "same"
            continue
        if crm_owned:
            take_remote = False
            if group == "attendees":
                result["attendees"] = _merge_attendees(
                    (base or {}).get("attendees", []), local["attendees"], remote["attendees"]
                )
                decisions[group] = "merged"
                continue
        elif base is None:
            take_remote = True
        else:
            bv = _group(base, group)
            if lv == bv:
                take_remote = True
            elif rv == bv:
                take_remote = False
            elif group == "attendees":
                result["attendees"] = _merge_attendees(
                    base.get("attendees", []), local["attendees"], remote["attendees"]
                )
                decisions[group] = "merged"
                continue
            else:
                take_remote = remote_later
        decisions[group] = "remote" if take_remote else "local"
        if take_remote:
            for f in fields:
                result[f] = remote.get(f)
    return MergeResult(
        content=result,
        local_changed=result != local,
        remote_changed=result != remote,
        decisions=decisions,
    )
