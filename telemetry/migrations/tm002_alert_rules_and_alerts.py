"""telemetry (maintenance): alert rules per equipment model and metric, and alerts.

Revision ID: tm002
Revises: tm001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "tm002"
down_revision = "tm001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE alert_rules (
            rule_id         text PRIMARY KEY CHECK (rule_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
            equipment_model text NOT NULL,
            metric          text NOT NULL,
            kind            text NOT NULL CHECK (kind IN ('threshold', 'rate_of_change')),
            direction       text NOT NULL CHECK (direction IN ('above', 'below')),
            limit_value     double precision NOT NULL,
            clear_at        double precision NOT NULL,
            min_duration_s  double precision NOT NULL DEFAULT 0 CHECK (min_duration_s >= 0),
            rate_window_s   double precision NOT NULL DEFAULT 3600 CHECK (rate_window_s > 0),
            severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );

        -- One active alert per (device, type): the partial unique index is the de-dup.
        CREATE TABLE alerts (
            alert_id         text PRIMARY KEY,
            device_id        text NOT NULL,
            alert_type       text NOT NULL,
            severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            state            text NOT NULL CHECK (state IN ('raised', 'acknowledged', 'cleared')),
            message          text NOT NULL DEFAULT '',
            raised_at        timestamptz NOT NULL,
            window_start     timestamptz NOT NULL,
            window_end       timestamptz NOT NULL,
            occurrences      integer NOT NULL DEFAULT 1,
            acknowledged_by  text,
            acknowledged_at  timestamptz,
            cleared_at       timestamptz
        );
        CREATE UNIQUE INDEX alerts_one_active ON alerts (device_id, alert_type)
            WHERE state <> 'cleared';
        CREATE INDEX alerts_device_time ON alerts (device_id, raised_at DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE alerts; DROP TABLE alert_rules")
