"""phone: the phone's own signing key, and service reports (PDF, customer signature,
anchored through the ledger with the rep's and the phone's signatures).

Revision ID: phn0004
Revises: phn0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "phn0004"
down_revision = "phn0003"
branch_labels = None
depends_on = ("l0001",)


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE phone_devices ADD COLUMN public_key bytea
            CHECK (public_key IS NULL OR length(public_key) = 65);
        CREATE TABLE phone_reports (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            work_order_id   bigint NOT NULL REFERENCES work_orders (id) ON DELETE CASCADE,
            account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            rep_id          bigint REFERENCES users (id) ON DELETE SET NULL,
            attachment_id   bigint NOT NULL REFERENCES phone_attachments (id),
            signature_id    bigint REFERENCES phone_attachments (id),
            sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            signer_name     text NOT NULL CHECK (length(signer_name) BETWEEN 1 AND 120),
            device_id       text REFERENCES phone_devices (device_id),
            status          text NOT NULL DEFAULT 'awaiting_device_signature'
                            CHECK (status IN ('awaiting_device_signature', 'signed')),
            ledger_source_id text UNIQUE,
            created_at      timestamptz NOT NULL DEFAULT now(),
            signed_at       timestamptz
        );
        CREATE INDEX phone_reports_wo ON phone_reports (work_order_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE phone_reports; ALTER TABLE phone_devices DROP COLUMN public_key")
