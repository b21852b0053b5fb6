"""insights: forecast snapshots per currency.

The forecast adds no amounts of different currencies together (it is asked per currency),
so its snapshots are kept per currency too, and accuracy compares a currency's forecast
with that currency's closed-won revenue. Snapshots taken before this revision added every
currency together: they get the currency when the tenant's deals have only one, else
ISO 4217's `XXX` ("no currency"), which accuracy compares with all closed-won revenue.

Revision ID: ins0301
Revises: ins0201
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0301"
down_revision = "ins0201"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE insights_forecast_snapshot
            ADD COLUMN currency char(3) NOT NULL DEFAULT 'XXX'
            CHECK (currency ~ '^[A-Z]{3}$');
        UPDATE insights_forecast_snapshot SET currency = single.c
        FROM (SELECT min(currency) AS c FROM opportunities
              HAVING count(DISTINCT currency) = 1) AS single;
        ALTER TABLE insights_forecast_snapshot ALTER COLUMN currency DROP DEFAULT,
            DROP CONSTRAINT insights_forecast_snapshot_pkey,
            ADD PRIMARY KEY (taken_on, group_by, group_key, currency, month);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM insights_forecast_snapshot s USING insights_forecast_snapshot o
        WHERE s.currency > o.currency AND (s.taken_on, s.group_by, s.group_key, s.month)
            = (o.taken_on, o.group_by, o.group_key, o.month);
        ALTER TABLE insights_forecast_snapshot DROP CONSTRAINT insights_forecast_snapshot_pkey,
            ADD PRIMARY KEY (taken_on, group_by, group_key, month), DROP COLUMN currency;
        """
    )
