"""phone: the reps' phones registered as field devices (the PWA's own broker account).

Revision ID: phn0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "phn0001"
down_revision = None
branch_labels = ("phone",)
depends_on = ("c0001", "t0001", "g0001")  # users, device, geo_device_rep


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE phone_devices (
            device_id   text PRIMARY KEY REFERENCES device (device_id),
            user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            label       text NOT NULL DEFAULT '' CHECK (length(label) <= 80),
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        );
        CREATE INDEX phone_devices_user ON phone_devices (user_id) WHERE revoked_at IS NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE phone_devices")
