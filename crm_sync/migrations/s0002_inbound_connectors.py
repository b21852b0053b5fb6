"""crm_sync: inbound connectors (external CRMs that push accounts and contacts).

Revision ID: s0002
Revises: s0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE inbound_connectors (
            name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
            secret      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE inbound_connectors")
