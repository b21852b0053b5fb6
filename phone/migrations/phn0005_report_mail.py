"""phone: where a signed service report was e-mailed (engage's outbox), and its hash
indexed for the public verification page.

Revision ID: phn0005
Revises: phn0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "phn0005"
down_revision = "phn0004"
branch_labels = None
depends_on = ("eng0001",)


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE phone_reports
            ADD COLUMN customer_email text
                CHECK (customer_email IS NULL OR length(customer_email) BETWEEN 3 AND 254),
            ADD COLUMN email_outbox_id bigint REFERENCES engage_outbox (id) ON DELETE SET NULL,
            -- queued | no_address | no_mailbox | refused: <why>
            ADD COLUMN email_state text CHECK (length(email_state) <= 300);
        CREATE INDEX phone_reports_sha256 ON phone_reports (sha256);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX phone_reports_sha256;
        ALTER TABLE phone_reports DROP COLUMN customer_email, DROP COLUMN email_outbox_id,
            DROP COLUMN email_state;
        """
    )
