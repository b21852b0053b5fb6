"""notify: Web Push subscriptions (one per device of a user) and the deliveries made, so a
retried delivery job pushes each notification to each subscription once.

Revision ID: ntf1001
Revises: ntf0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ntf1001"
down_revision = "ntf0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE push_subscriptions (
            subscription_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            device_key      text NOT NULL CHECK (device_key ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
            endpoint        text NOT NULL UNIQUE CHECK (length(endpoint) BETWEEN 8 AND 1000),
            p256dh          text NOT NULL CHECK (length(p256dh) BETWEEN 40 AND 200),
            auth            text NOT NULL CHECK (length(auth) BETWEEN 8 AND 100),
            created_at      timestamptz NOT NULL DEFAULT now(),
            last_sent_at    timestamptz,
            failures        integer NOT NULL DEFAULT 0,
            UNIQUE (user_id, device_key)
        );
        CREATE TABLE push_deliveries (
            notification_id bigint NOT NULL REFERENCES notifications (notification_id) ON DELETE CASCADE,
            subscription_id bigint NOT NULL REFERENCES push_subscriptions (subscription_id) ON DELETE CASCADE,
            sent_at         timestamptz NOT NULL DEFAULT now(),
            status          integer NOT NULL,
            PRIMARY KEY (notification_id, subscription_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE push_deliveries, push_subscriptions")
