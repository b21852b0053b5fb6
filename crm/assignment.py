"""Lead assignment rules (pure): which rule matches a new lead, and who is next in line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def rule_matches(rule: Mapping[str, Any], lead: Mapping[str, Any]) -> bool:
    """A rule matches when each of its criteria that is set equals the lead's value."""
    if rule.get("match_source") is not None and rule["match_source"] != lead.get("source", "other"):
        return False
    if rule.get("match_region") is not None:
        region = lead.get("region")
        if region is None or region.strip().lower() != str(rule["match_region"]).strip().lower():
            return False
    return not (
        rule.get("match_territory_id") is not None
        and rule["match_territory_id"] != lead.get("territory_id")
    )


def next_assignee(strategy: str, candidates: Sequence[int], cursor: int | None) -> int | None:
    """fixed: the first candidate; round_robin: the first candidate after `cursor` (ids in
    ascending order, wrapping around), so a removed or added candidate never stalls it."""
    if not candidates:
        return None
    ordered = sorted(set(candidates))
    if strategy == "fixed" or cursor is None:
        return ordered[0]
    for user_id in ordered:
        if user_id > cursor:
            return user_id
    return ordered[0]
