"""assistant: the name the customer bot signs its web chat replies with (the widget shows
it, marked as the assistant, so that a visitor knows a bot answers).

Revision ID: ast0301
Revises: ast0201_voice_workflows
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ast0301"
down_revision = "ast0201_voice_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE assistant_bot_settings ADD COLUMN name text NOT NULL DEFAULT 'Assistant'
            CHECK (char_length(btrim(name)) BETWEEN 1 AND 40);
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE assistant_bot_settings DROP COLUMN name;")
