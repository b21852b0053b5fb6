"""notify: the notifications a user receives (console list; push and e-mail deliver them).

A notification is deduplicated per user by its `dedupe_key` (e.g. `reminder:<event>:<at>`),
so a job that retries after a crash, or two workers racing, notify once.

Revision ID: ntf0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ntf0001"
down_revision = None
branch_labels = ("notify",)
depends_on = ("c0001",)  # users


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE notifications (
            notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,63}$'),
            title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            body            text NOT NULL DEFAULT '' CHECK (length(body) <= 2000),
            link            text CHECK (link IS NULL OR (link LIKE '/%' AND length(link) <= 500)),
            urgent          boolean NOT NULL DEFAULT false,
            dedupe_key      text NOT NULL CHECK (length(dedupe_key) BETWEEN 1 AND 300),
            created_at      timestamptz NOT NULL DEFAULT now(),
            read_at         timestamptz,
            UNIQUE (user_id, dedupe_key)
        );
        CREATE INDEX notifications_unread ON notifications (user_id, notification_id DESC)
            WHERE read_at IS NULL;
        CREATE INDEX notifications_user ON notifications (user_id, notification_id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE notifications")
