"""assistant: the audit of what the assistant did for whom (every confirmed write, carried out
or refused), with what it takes to undo a write it carried out.

Revision ID: ast0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ast0001"
down_revision = None
branch_labels = ("assistant",)
depends_on = ("c0002",)  # users and the CRM tables


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE assistant_actions (
            id bigserial PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            at timestamptz NOT NULL DEFAULT now(),
            channel text NOT NULL CHECK (channel IN ('text', 'voice')),
            text text NOT NULL,
            intent text NOT NULL,
            slots jsonb NOT NULL DEFAULT '{}'::jsonb,
            status text NOT NULL CHECK (status IN ('done', 'refused', 'not_supported')),
            message text NOT NULL DEFAULT '',
            entity text,
            record_id bigint,
            undo jsonb,
            undone_at timestamptz
        );
        CREATE INDEX assistant_actions_user ON assistant_actions (user_id, id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE assistant_actions")
