"""identity: login throttling state shared by every API worker process.

One row per throttled key: `account:<lower e-mail>` or `source:<address>`. Workers are
separate processes, so the counters live here and every update is one atomic upsert.

Revision ID: id0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "id0001"
down_revision = None
branch_labels = ("identity",)
depends_on = ("c0001",)  # users and api_tokens


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE login_throttle (
            key             text PRIMARY KEY CHECK (length(key) <= 400),
            failures        integer NOT NULL CHECK (failures >= 0),
            last_failure_at timestamptz NOT NULL,
            locked_until    timestamptz
        );
        -- Sessions are tokens too: a session token carries a kind so that the token list
        -- can tell them apart and logout can revoke exactly the caller's session.
        ALTER TABLE api_tokens ADD COLUMN kind text NOT NULL DEFAULT 'api'
            CHECK (kind IN ('api', 'session'));
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE login_throttle; ALTER TABLE api_tokens DROP COLUMN kind;")
