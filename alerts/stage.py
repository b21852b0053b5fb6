"""Gateway stage: rules on the live telemetry -> alerts -> CRM work orders and webhooks.

For each new telemetry sample of a device that belongs to an asset, the rules of the
asset's equipment model and that metric are evaluated (`alerts.rules.RuleEngine`, bounded
cost per sample). A raise or clear updates the `alerts` table (`alerts.store`,
de-duplicated per device and type) and tells the `AlertHooks` the composition root gives
(crm_sync: the alert's webhook event, and for a raised alert at or above
`work_order_severity` its work order, idempotent).
Everything happens in the batch's transaction, so alerts and work orders commit with the
telemetry that caused them.

Live anomaly monitors (`insights.maintenance.live.AnomalyMonitor`, one per equipment
model, given by the composition root) score the same samples; their raise and clear become
an `anomaly` alert of the device, with the same life cycle.

Rules and the device -> equipment model map are re-read when they change (polled every
`refresh_s`); after a rolled-back batch the engine is rebuilt from storage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from alerts import store as alert_store
from alerts.model import Alert, AlertEvent, Change
from alerts.rules import RuleEngine, Severity, Transition, TransitionKind
from alerts.wording import raised_message
from insights.maintenance.live import AnomalyMonitor, LiveKind, LiveTransition

ANOMALY_ALERT_TYPE = "anomaly"

log = logging.getLogger(__name__)


class AlertHooks(Protocol):
    """What an alert's life cycle means to the rest of the product; inside the batch's
    transaction, idempotent per alert and change."""

    def changed(self, conn: psycopg.Connection[Any], alert: Alert, change: str) -> None:
        """`change` is "raised" (also on escalation or reopening) or "cleared"."""

    def raised(
        self, conn: psycopg.Connection[Any], alert: Alert, *, now: datetime, min_severity: Severity
    ) -> None:
        """A raised alert at or above `min_severity` may need work on site."""


class NoAlertHooks:
    def changed(self, conn: psycopg.Connection[Any], alert: Alert, change: str) -> None:
        return None

    def raised(
        self, conn: psycopg.Connection[Any], alert: Alert, *, now: datetime, min_severity: Severity
    ) -> None:
        return None


class AlertStage:
    """gateway.pipeline.StageHandler for threshold and rate-of-change alerts."""

    name = "alerts"

    def __init__(
        self,
        *,
        refresh_s: float = 10.0,
        work_order_severity: Severity = Severity.WARNING,
        reopen_within_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        monitors: Mapping[str, AnomalyMonitor] | None = None,
        anomaly_severity: Severity = Severity.WARNING,
        hooks: AlertHooks | None = None,
    ) -> None:
        self.hooks = hooks or NoAlertHooks()
        self.monitors = dict(monitors or {})
        self.anomaly_severity = anomaly_severity
        self.refresh_s = refresh_s
        self.work_order_severity = work_order_severity
        self.reopen_within_s = reopen_within_s
        self.clock = clock
        self.engine = RuleEngine([])
        self.models: dict[str, str] = {}
        self._version: tuple[int, datetime | None] | None = None
        self._next_refresh_s = 0.0
        self._stale = True
        self.last_events: list[AlertEvent] = []

    def _refresh(self, conn: psycopg.Connection[Any]) -> None:
        now_s = self.clock()
        if not self._stale and now_s < self._next_refresh_s:
            return
        self._next_refresh_s = now_s + self.refresh_s
        self.models = alert_store.device_models(conn)
        version = alert_store.rules_version(conn)
        if not self._stale and version == self._version:
            return
        engine = RuleEngine(alert_store.load_rules(conn))
        by_type: dict[tuple[str, str], list[str]] = {}
        for rule in engine.rules:
            by_type.setdefault((rule.equipment_model, rule.alert_type), []).append(rule.rule_id)
        for device_id, alert_type in alert_store.active_keys(conn):
            model = self.models.get(device_id)
            for rule_id in by_type.get((model or "", alert_type), []):
                engine.restore_active(device_id, rule_id)
        self.engine = engine
        self._version = version
        self._stale = False

    def handle(self, conn: psycopg.Connection[Any], new: Any) -> None:
        self.last_events = []
        if not new.telemetry:
            return
        self._refresh(conn)
        if not self.engine.rules and not self.monitors:
            return
        for device_id, batch in new.telemetry:
            model = self.models.get(device_id)
            if model is None:
                continue
            monitor = self.monitors.get(model)
            for s in batch.samples:
                for tr in self.engine.observe(device_id, model, s.t_ms, s.metric, s.value):
                    self._apply(conn, tr)
                if monitor is not None:
                    live = monitor.observe(device_id, s.t_ms, s.metric, s.value)
                    if live is not None:
                        self._apply_anomaly(conn, live)

    def _apply_anomaly(self, conn: psycopg.Connection[Any], tr: LiveTransition) -> None:
        if tr.kind is LiveKind.CLEAR:
            cleared = alert_store.clear_alert(conn, tr.device_id, ANOMALY_ALERT_TYPE, tr.t_ms)
            if cleared is not None:
                self.hooks.changed(conn, cleared.alert, "cleared")
                self.last_events.append(cleared)
            return
        ev = alert_store.raise_alert(
            conn,
            tr.device_id,
            ANOMALY_ALERT_TYPE,
            self.anomaly_severity,
            tr.t_ms,
            window_start_ms=tr.window_start_ms,
            message=f"telemetry unlike healthy equipment of this model (score {tr.score:.3g})",
            reopen_within_s=self.reopen_within_s,
        )
        self._after_raise(conn, ev, tr.t_ms, tr.device_id)

    def _apply(self, conn: psycopg.Connection[Any], tr: Transition) -> None:
        rule = tr.rule
        if tr.kind is TransitionKind.RAISE:
            message = raised_message(
                rule.metric,
                tr.value,
                rule.direction.value,
                rule.limit,
                rate=rule.kind.value == "rate_of_change",
            )
            ev = alert_store.raise_alert(
                conn,
                tr.asset_id,
                rule.alert_type,
                rule.severity,
                tr.t_ms,
                window_start_ms=tr.window_start_ms,
                message=message,
                reopen_within_s=self.reopen_within_s,
            )
            self._after_raise(conn, ev, tr.t_ms, tr.asset_id)
            return
        cleared = alert_store.clear_alert(conn, tr.asset_id, rule.alert_type, tr.t_ms)
        if cleared is not None:
            self.hooks.changed(conn, cleared.alert, "cleared")
            self.last_events.append(cleared)

    def _after_raise(
        self, conn: psycopg.Connection[Any], ev: AlertEvent, t_ms: int, device_id: str
    ) -> None:
        if ev.change in (Change.CREATED, Change.REOPENED) or ev.escalated:
            self.hooks.changed(conn, ev.alert, "raised")
            self.hooks.raised(
                conn,
                ev.alert,
                now=datetime.fromtimestamp(t_ms / 1000, UTC),
                min_severity=self.work_order_severity,
            )
        self.last_events.append(ev)

    def rollback(self) -> None:
        # The engine moved with samples whose batch did not commit: rebuild from storage.
        self._stale = True

    def committed(self) -> None:
        pass
