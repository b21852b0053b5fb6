"""crm: indexes for access-scoped contact lists filtered by name (territory or owner, then
last name, in id order), so a rep's filtered page is a short ordered index walk.

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX contacts_territory_last_name ON contacts (territory_id, last_name, id);
        CREATE INDEX contacts_owner_last_name ON contacts (owner_id, last_name, id);
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX contacts_territory_last_name, contacts_owner_last_name")
