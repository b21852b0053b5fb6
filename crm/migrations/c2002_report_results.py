"""crm: saved reports' latest results per user, so a dashboard's tiles can be answered from a
result a minute old instead of re-running every report on every load.

Keyed by report and user (a result holds only the rows that user may see); `definition_hash`
covers the definition and the user's access at the time, so an edited report or a changed
territory never reads an old result.

Revision ID: c2002
Revises: c2001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c2002"
down_revision = "c2001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE report_results (
            report_id       bigint NOT NULL REFERENCES saved_reports (id) ON DELETE CASCADE,
            user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            definition_hash text NOT NULL,
            computed_at     timestamptz NOT NULL,
            result          jsonb NOT NULL,
            PRIMARY KEY (report_id, user_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS report_results")
