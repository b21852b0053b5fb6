"""assistant: one row per message understood (typed or spoken), for the assistant's analytics:
per intent volume, answered and fallback rates, confirmations, average turns.

Revision ID: ast0002
Revises: ast0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ast0002"
down_revision = "ast0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE assistant_messages (
            id bigserial PRIMARY KEY,
            user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            at timestamptz NOT NULL DEFAULT now(),
            channel text NOT NULL CHECK (channel IN ('text', 'voice')),
            intent text NOT NULL,
            decided_by text NOT NULL,
            confidence real NOT NULL,
            outcome text NOT NULL,
            latency_ms real NOT NULL
        );
        CREATE INDEX assistant_messages_at ON assistant_messages (at);
        CREATE INDEX assistant_messages_user ON assistant_messages (user_id, at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE assistant_messages")
