"""crm: saved list views, per user: a named set of a list's search text, filter, sort and
columns (`crm.view_routes`).

Revision ID: c1003
Revises: c1002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c1003"
down_revision = "c1002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE saved_views (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            owner_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            entity     text NOT NULL,
            name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            params     jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (owner_id, entity, name)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE saved_views")
