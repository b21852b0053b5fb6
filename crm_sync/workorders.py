"""Alerts become work orders on the asset's account (the bridge from rules to the CRM).

One work order per alert, idempotent on (source 'alert', source_ref 'alert:<id>'): a
redelivered or replayed alert never opens a second one. Priority and SLA come from the
asset's service contract and the alert's severity; the assignee is the least-loaded active
rep of the account's territory with every required skill. Each created work order leaves
an activity on the account's timeline and a `work_order.created` webhook event; an urgent
one also a `work_order.urgent` event, which the routing re-plan listens to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.model import Alert
from alerts.rules import Severity
from alerts.wording import alert_title
from crm_sync import webhooks
from crm_sync.errors import UnknownAsset

log = logging.getLogger(__name__)

SOURCE = "alert"

_PRIORITY = {
    # severity -> contract tier -> priority
    Severity.CRITICAL: {"basic": "high", "standard": "urgent", "premium": "urgent"},
    Severity.WARNING: {"basic": "normal", "standard": "normal", "premium": "high"},
    Severity.INFO: {"basic": "low", "standard": "low", "premium": "normal"},
}


def priority_for(severity: Severity, contract_tier: str) -> str:
    return _PRIORITY[severity].get(contract_tier, "normal")


def sla_hours_for(severity: Severity, contract_sla_hours: int) -> int:
    """The contract's response time; a critical alert halves it (at least 4 hours)."""
    if severity is Severity.CRITICAL:
        return max(4, contract_sla_hours // 2)
    return contract_sla_hours


@dataclass(frozen=True, slots=True)
class WorkOrderResult:
    work_order_id: int
    created: bool
    account_id: int
    assignee_id: int | None
    priority: str
    urgent: bool


def evidence_window(start_ms: int, end_ms: int) -> str:
    """The alert's evidence window as a person reads it in stored text, whose readers are in
    any zone: seconds in UTC, named, the date once if both ends share it (not ISO 8601 with
    microseconds and an offset)."""
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    if start.date() == end.date():
        return f"{start:%Y-%m-%d}, {start:%H:%M:%S} to {end:%H:%M:%S} UTC"
    return f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC"


def open_work_order(
    conn: psycopg.Connection[Any],
    alert: Alert,
    *,
    now: datetime,
    min_severity: Severity = Severity.WARNING,
) -> WorkOrderResult | None:
    """Open (or find) the work order of an alert; None below `min_severity`.

    `alert.asset_id` is the device id of the asset's device. Runs in the caller's
    transaction.
    """
    if alert.severity.rank < min_severity.rank:
        return None
    asset = conn.execute(
        """
        SELECT a.id, a.account_id, a.equipment_model, a.serial, a.contract_tier, a.sla_hours,
               a.required_skills, acc.territory_id, acc.name
        FROM assets a JOIN accounts acc ON acc.id = a.account_id
        WHERE a.device_id = %s
        """,
        (alert.asset_id,),
    ).fetchone()
    if asset is None:
        raise UnknownAsset(f"no asset has device {alert.asset_id!r}")
    asset_id, account_id, model, serial, tier, sla_h, skills, territory_id, account_name = asset
    required = list(skills) or [str(model).split("-", 1)[0]]
    priority = priority_for(alert.severity, tier)
    due = now + timedelta(hours=sla_hours_for(alert.severity, int(sla_h)))
    source_ref = f"alert:{alert.alert_id}"

    existing = conn.execute(
        "SELECT id, account_id, assignee_id, priority FROM work_orders "
        "WHERE source = %s AND source_ref = %s",
        (SOURCE, source_ref),
    ).fetchone()
    if existing is not None:
        return WorkOrderResult(
            existing[0], False, existing[1], existing[2], existing[3], existing[3] == "urgent"
        )

    rep = conn.execute(
        """
        SELECT u.id FROM users u
        WHERE u.active AND u.role = 'rep' AND u.territory_id IS NOT DISTINCT FROM %s
          AND u.skills @> %s::text[]
        ORDER BY (SELECT count(*) FROM work_orders w
                  WHERE w.assignee_id = u.id AND w.status NOT IN ('done', 'cancelled')), u.id
        LIMIT 1
        """,
        (territory_id, required),
    ).fetchone()
    assignee = int(rep[0]) if rep else None
    title = f"{alert.severity.value.title()}: {alert_title(alert.alert_type)} on {model} {serial or alert.asset_id}"
    description = (
        f"{alert.message or 'Alert raised by fieldmesh monitoring.'}\n"
        # the equipment as its people know it (model and serial), never its row id
        f"{' '.join(str(x) for x in (model, serial) if x)} (device {alert.asset_id}) at "
        f"{account_name}; evidence window "
        f"{evidence_window(alert.window_start_ms, alert.window_end_ms)}."
    )
    row = conn.execute(
        """
        INSERT INTO work_orders (account_id, title, description, priority, status, sla_due_at,
                                 required_skills, latest_end, assignee_id, source, source_ref,
                                 territory_id, custom, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
        RETURNING id
        """,
        (
            account_id,
            title[:300],
            description,
            priority,
            "assigned" if assignee else "new",
            due,
            required,
            due,
            assignee,
            SOURCE,
            source_ref,
            territory_id,
            Jsonb(
                {"alert_id": alert.alert_id, "asset_id": asset_id, "alert_type": alert.alert_type}
            ),
            now,  # the SLA's clock: completion and due time are on it too (MTTR, attainment)
        ),
    ).fetchone()
    if row is None:  # a concurrent writer opened it first
        return open_work_order(conn, alert, now=now, min_severity=min_severity)
    wo_id = int(row[0])
    conn.execute(
        """
        INSERT INTO activities (type, subject, body, status, due_at, account_id, work_order_id,
                                owner_id, territory_id, source, source_ref)
        VALUES ('task', %s, %s, 'open', %s, %s, %s, %s, %s, 'crm_sync', %s)
        ON CONFLICT (source, source_ref) WHERE source_ref IS NOT NULL DO NOTHING
        """,
        (
            f"Work order #{wo_id}: {title}"[:500],
            description,
            due,
            account_id,
            wo_id,
            assignee,
            territory_id,
            f"{source_ref}:work_order",
        ),
    )
    data = {
        "work_order_id": wo_id,
        "account_id": account_id,
        "asset_id": asset_id,
        "alert_id": alert.alert_id,
        "priority": priority,
        "assignee_id": assignee,
        "sla_due_at": due.isoformat(),
    }
    webhooks.enqueue(conn, "work_order.created", f"work_order.created:{wo_id}", data)
    urgent = priority == "urgent"
    if urgent:
        webhooks.enqueue(conn, "work_order.urgent", f"work_order.urgent:{wo_id}", data)
    return WorkOrderResult(wo_id, True, account_id, assignee, priority, urgent)


def publish_alert(conn: psycopg.Connection[Any], alert: Alert, change: str) -> int:
    """Webhook event for an alert's life-cycle change (raised, acknowledged, cleared)."""
    event_type = f"alert.{change}"
    data = {
        "alert_id": alert.alert_id,
        "device_id": alert.asset_id,
        "alert_type": alert.alert_type,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "occurrences": alert.occurrences,
        "window_start_ms": alert.window_start_ms,
        "window_end_ms": alert.window_end_ms,
    }
    return webhooks.enqueue(
        conn, event_type, f"{event_type}:{alert.alert_id}:{alert.occurrences}", data
    )


class CrmAlertHooks:
    """alerts.stage.AlertHooks: an alert's webhook events and its work order."""

    def changed(self, conn: psycopg.Connection[Any], alert: Alert, change: str) -> None:
        publish_alert(conn, alert, change)

    def raised(
        self, conn: psycopg.Connection[Any], alert: Alert, *, now: datetime, min_severity: Severity
    ) -> None:
        try:
            open_work_order(conn, alert, now=now, min_severity=min_severity)
        except UnknownAsset:
            log.warning("alert %s on device %s: no asset", alert.alert_id, alert.asset_id)
