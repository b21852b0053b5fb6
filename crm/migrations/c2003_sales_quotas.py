"""crm: sales quotas per rep and period (and currency), for quota attainment and pipeline
coverage (crm.kpis).

Revision ID: c2003
Revises: c2002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c2003"
down_revision = "c2002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sales_quotas (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            period_start date NOT NULL,
            period_end   date NOT NULL,  -- excluded
            amount       numeric(18, 2) NOT NULL CHECK (amount > 0),
            currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            set_by       bigint REFERENCES users (id) ON DELETE SET NULL,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            CHECK (period_end > period_start),
            UNIQUE (user_id, period_start, currency)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS sales_quotas")
