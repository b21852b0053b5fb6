"""ar_viewer: share links, so that a customer can open one AR scene without an account.

A row names one scene (a territory with its height metric, or one device's asset view), who
created it, when it expires and whether it was revoked. The link's token is an HMAC over
the row (ar_viewer/shares.py), so the token itself is never stored.

Revision ID: a1001
"""

from __future__ import annotations

from alembic import op

revision = "a1001"
down_revision = None
branch_labels = ("ar_viewer",)
depends_on = ("c0001", "t0001")  # territories, users; device


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ar_shares (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind          text NOT NULL CHECK (kind IN ('territory', 'asset')),
            territory_id  bigint REFERENCES territories (id) ON DELETE CASCADE,
            device_id     text REFERENCES device (device_id) ON DELETE CASCADE,
            metric        text NOT NULL DEFAULT 'revenue' CHECK (metric IN ('revenue', 'pipeline')),
            note          text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
            created_by    bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL,
            revoked_at    timestamptz,
            revoked_by    bigint REFERENCES users (id) ON DELETE SET NULL,
            CHECK ((kind = 'territory') = (territory_id IS NOT NULL)),
            CHECK ((kind = 'asset') = (device_id IS NOT NULL)),
            CHECK (expires_at > created_at)
        );
        CREATE INDEX ar_shares_created_by ON ar_shares (created_by, created_at DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ar_shares")
