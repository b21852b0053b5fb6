"""crm: indexes for "what changed since" questions asked every few seconds (a calendar
sync's idle round: the user's activities changed since its watermark, accounts whose
address changed, and the count of the user's timed activities without a heap visit).

Revision ID: c2004
Revises: c2003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c2004"
down_revision = "c2003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX activities_owner_updated ON activities (owner_id, updated_at);
        CREATE INDEX activities_owner_timed ON activities (owner_id, type)
            WHERE coalesce(start_at, due_at) IS NOT NULL;
        CREATE INDEX accounts_updated ON accounts (updated_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX activities_owner_updated, activities_owner_timed, accounts_updated")
