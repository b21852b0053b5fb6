"""Alert life cycle: raised -> acknowledged -> cleared (pure, no I/O).

One alert per (asset, alert type) while it is active: raising it again only counts an
occurrence and may escalate its severity. An alert cleared less than `reopen_within_s`
ago is reopened instead of a new one being created, so a flapping sensor produces one
alert with many occurrences, not a storm. Each alert keeps the telemetry window that
caused it (from the first evidence to the latest).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from alerts.rules import Severity


class AlertError(ValueError):
    """An alert operation that cannot apply (unknown alert, wrong state)."""


class AlertState(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    asset_id: str
    alert_type: str
    severity: Severity
    state: AlertState
    message: str
    raised_at_ms: int
    window_start_ms: int
    window_end_ms: int
    occurrences: int = 1
    acknowledged_by: str | None = None
    acknowledged_at_ms: int | None = None
    cleared_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.state is not AlertState.CLEARED


class Change(StrEnum):
    CREATED = "created"
    REPEATED = "repeated"  # the active alert was raised again (maybe escalated)
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """What happened to an alert; downstream (CRM work orders, webhooks) reacts to these."""

    change: Change
    alert: Alert
    escalated: bool = False


class AlertBook:
    """The alerts of a deployment, indexed by id and by (asset, type)."""

    def __init__(
        self,
        *,
        reopen_within_s: float = 3600.0,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if reopen_within_s < 0:
            raise AlertError("reopen_within_s must be >= 0")
        self._reopen_ms = int(reopen_within_s * 1000)
        self._new_id = new_id
        self._by_id: dict[str, Alert] = {}
        self._latest: dict[tuple[str, str], str] = {}  # (asset, type) -> latest alert id

    def get(self, alert_id: str) -> Alert:
        try:
            return self._by_id[alert_id]
        except KeyError:
            raise AlertError(f"unknown alert {alert_id!r}") from None

    def active(self) -> list[Alert]:
        return [a for a in self._by_id.values() if a.active]

    def raise_alert(
        self,
        asset_id: str,
        alert_type: str,
        severity: Severity,
        t_ms: int,
        *,
        window_start_ms: int | None = None,
        message: str = "",
    ) -> AlertEvent:
        start = t_ms if window_start_ms is None else min(window_start_ms, t_ms)
        key = (asset_id, alert_type)
        prev_id = self._latest.get(key)
        prev = self._by_id.get(prev_id) if prev_id else None
        if prev is not None and prev.active:
            escalated = severity.rank > prev.severity.rank
            updated = replace(
                prev,
                severity=severity if escalated else prev.severity,
                # an escalation needs a fresh acknowledgement
                state=AlertState.RAISED if escalated else prev.state,
                occurrences=prev.occurrences + 1,
                window_end_ms=max(prev.window_end_ms, t_ms),
                message=message or prev.message,
            )
            self._by_id[prev.alert_id] = updated
            return AlertEvent(Change.REPEATED, updated, escalated=escalated)
        if (
            prev is not None
            and prev.cleared_at_ms is not None
            and t_ms - prev.cleared_at_ms <= self._reopen_ms
        ):
            reopened = replace(
                prev,
                state=AlertState.RAISED,
                severity=severity if severity.rank > prev.severity.rank else prev.severity,
                occurrences=prev.occurrences + 1,
                window_end_ms=max(prev.window_end_ms, t_ms),
                cleared_at_ms=None,
                acknowledged_by=None,
                acknowledged_at_ms=None,
                message=message or prev.message,
            )
            self._by_id[prev.alert_id] = reopened
            return AlertEvent(Change.REOPENED, reopened)
        alert = Alert(
            alert_id=self._new_id(),
            asset_id=asset_id,
            alert_type=alert_type,
            severity=severity,
            state=AlertState.RAISED,
            message=message,
            raised_at_ms=t_ms,
            window_start_ms=start,
            window_end_ms=t_ms,
        )
        self._by_id[alert.alert_id] = alert
        self._latest[key] = alert.alert_id
        return AlertEvent(Change.CREATED, alert)

    def acknowledge(self, alert_id: str, user: str, t_ms: int) -> AlertEvent:
        alert = self.get(alert_id)
        if alert.state is AlertState.CLEARED:
            raise AlertError(f"alert {alert_id} is cleared: nothing to acknowledge")
        if not user:
            raise AlertError("user: who acknowledges must be named")
        updated = replace(
            alert, state=AlertState.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at_ms=t_ms
        )
        self._by_id[alert_id] = updated
        return AlertEvent(Change.ACKNOWLEDGED, updated)

    def clear(self, asset_id: str, alert_type: str, t_ms: int) -> AlertEvent | None:
        """Clear the active alert of this asset and type; None when there is none."""
        alert_id = self._latest.get((asset_id, alert_type))
        alert = self._by_id.get(alert_id) if alert_id else None
        if alert is None or not alert.active:
            return None
        updated = replace(
            alert,
            state=AlertState.CLEARED,
            cleared_at_ms=t_ms,
            window_end_ms=max(alert.window_end_ms, t_ms),
        )
        self._by_id[alert.alert_id] = updated
        return AlertEvent(Change.CLEARED, updated)
