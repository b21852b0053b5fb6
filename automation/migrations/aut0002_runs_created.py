"""automation: runs by creation time (the matcher's per-minute rate limits count them).

Revision ID: aut0002
Revises: aut0001
"""

from __future__ import annotations

from alembic import op

revision = "aut0002"
down_revision = "aut0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX automation_runs_created ON automation_runs (created_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS automation_runs_created")
