"""phone: what the rep records at each stop (check-in/out, checklist, parts, time), and
the checklist of each work-order type.

Revision ID: phn0002
Revises: phn0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "phn0002"
down_revision = "phn0001"
branch_labels = None
depends_on = ("c0001",)  # accounts, work orders


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE phone_checklists (
            wo_type  text PRIMARY KEY CHECK (wo_type ~ '^[a-z][a-z0-9_]{0,31}$'),
            items    jsonb NOT NULL CHECK (jsonb_typeof(items) = 'array')
        );
        INSERT INTO phone_checklists (wo_type, items) VALUES
          ('service', '["Inspect the equipment", "Clean filters", "Check pressures and temperatures", "Test run", "Customer briefed"]'),
          ('repair', '["Diagnose the fault", "Isolate and lock out", "Replace the faulty part", "Test run", "Customer briefed"]'),
          ('installation', '["Site survey", "Mount and connect", "Commission", "Train the customer", "Customer briefed"]'),
          ('inspection', '["Visual inspection", "Safety devices", "Readings recorded", "Customer briefed"]');

        CREATE TABLE phone_stop_work (
            user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            day            date NOT NULL,
            stop_key       text NOT NULL CHECK (stop_key ~ '^(wo|acct):[0-9]{1,19}$'),
            account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            work_order_id  bigint REFERENCES work_orders (id) ON DELETE SET NULL,
            checkin_at     timestamptz,
            checkout_at    timestamptz,
            checklist      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(checklist) = 'object'),
            parts          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(parts) = 'array'),
            completed      boolean NOT NULL DEFAULT false,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, day, stop_key),
            CHECK (checkout_at IS NULL OR checkin_at IS NULL OR checkout_at >= checkin_at)
        );
        CREATE INDEX phone_stop_work_wo ON phone_stop_work (work_order_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE phone_stop_work, phone_checklists")
