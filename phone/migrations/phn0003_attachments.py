"""phone: photos and documents attached to a work order or an account visit; the bytes
are content-addressed files (phone/storage.py), the rows say where they belong.

Revision ID: phn0003
Revises: phn0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "phn0003"
down_revision = "phn0002"
branch_labels = None
depends_on = ("c0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE phone_attachments (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            size_bytes     integer NOT NULL CHECK (size_bytes > 0),
            content_type   text NOT NULL CHECK (content_type IN
                               ('image/jpeg', 'application/pdf')),
            kind           text NOT NULL CHECK (kind IN ('image', 'document', 'signature', 'report')),
            filename       text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
            width          integer,
            height         integer,
            has_thumb      boolean NOT NULL DEFAULT false,
            account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            work_order_id  bigint REFERENCES work_orders (id) ON DELETE SET NULL,
            activity_id    bigint REFERENCES activities (id) ON DELETE SET NULL,
            uploaded_by    bigint REFERENCES users (id) ON DELETE SET NULL,
            client_key     text NOT NULL CHECK (length(client_key) BETWEEN 1 AND 100),
            created_at     timestamptz NOT NULL DEFAULT now(),
            UNIQUE (uploaded_by, client_key)
        );
        CREATE INDEX phone_attachments_wo ON phone_attachments (work_order_id);
        CREATE INDEX phone_attachments_account ON phone_attachments (account_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE phone_attachments")
