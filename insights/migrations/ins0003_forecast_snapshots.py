"""insights: forecast snapshots, so a forecast's accuracy against actuals is tracked.

Revision ID: ins0003
Revises: ins0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0003"
down_revision = "ins0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- What the pipeline forecast said on `taken_on` for `month` (one row per day,
        -- group and month; a second snapshot on the same day replaces the first).
        CREATE TABLE insights_forecast_snapshot (
            taken_on      date        NOT NULL,
            group_by      text        NOT NULL CHECK (group_by IN ('all', 'territory')),
            group_key     text        NOT NULL,
            month         text        NOT NULL CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
            expected      double precision NOT NULL,
            low           double precision NOT NULL,
            high          double precision NOT NULL,
            history_point double precision,
            PRIMARY KEY (taken_on, group_by, group_key, month)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE insights_forecast_snapshot;")
