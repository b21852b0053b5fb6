"""insights: lifetime value and segment of every customer account.

Revision ID: ins0100
Revises: ins0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0100"
down_revision = "ins0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Recomputed by the insights jobs (insights.segments): the account's expected
        -- lifetime value from its yearly revenue and retention, and its K-means segment
        -- (DBSCAN marks the accounts far from every dense group as 'atypical').
        CREATE TABLE insights_account_value (
            account_id     bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
            yearly_revenue double precision NOT NULL CHECK (yearly_revenue >= 0),
            retention      double precision NOT NULL CHECK (retention BETWEEN 0 AND 1),
            clv            double precision NOT NULL CHECK (clv >= 0),
            segment        text NOT NULL CHECK (length(segment) BETWEEN 1 AND 200),
            atypical       boolean NOT NULL DEFAULT false,
            computed_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX insights_account_value_segment ON insights_account_value (segment);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE insights_account_value")
