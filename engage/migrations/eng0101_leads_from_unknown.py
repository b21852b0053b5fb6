"""engage: a lead from an unknown sender, by a rule per mailbox.

- `engage_mailboxes.leads_from_unknown` (off by default) and `leads_per_day` (the most
  leads the rule creates from that mailbox in 24 hours).
- `engage_lead_origins`: which address made which lead, from which mailbox and message
  (one lead per address: the rule's dedupe, and its 24-hour count).

Revision ID: eng0101
Revises: eng0100
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "eng0101"
down_revision = "eng0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE engage_mailboxes
            ADD COLUMN leads_from_unknown boolean NOT NULL DEFAULT false,
            ADD COLUMN leads_per_day integer NOT NULL DEFAULT 50
                CHECK (leads_per_day BETWEEN 0 AND 10000);

        CREATE TABLE engage_lead_origins (
            address     text PRIMARY KEY CHECK (address = lower(address)),
            lead_id     bigint NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
            mailbox_id  bigint REFERENCES engage_mailboxes (id) ON DELETE SET NULL,
            message_id  text,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX engage_lead_origins_mailbox ON engage_lead_origins (mailbox_id, created_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE engage_lead_origins;
        ALTER TABLE engage_mailboxes DROP COLUMN leads_from_unknown, DROP COLUMN leads_per_day;
        """
    )
