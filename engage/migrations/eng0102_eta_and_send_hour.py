"""engage: technicians' ETA messages, e-mails held for the contact's learned hour, teams.

- `engage_eta_notices`: per work order, the ETA last told to the customer (from which
  plan, on which channel), so a re-plan that moves it sends one update and an unchanged
  plan sends nothing again.
- `engage_outbox.not_before`: a queued e-mail is not claimed before this time (a
  marketing e-mail waits for the hour the contact engages at).
- `engage_conversations.team_mailbox_id`: the team (a team mailbox: support@, sales@) a
  conversation is assigned to, besides or instead of a user.

Revision ID: eng0102
Revises: eng0101
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "eng0102"
down_revision = "eng0101"
branch_labels = None
depends_on = ("r0001",)  # routing_plans, routing_stops


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE engage_eta_notices (
            work_order_id  bigint PRIMARY KEY REFERENCES work_orders (id) ON DELETE CASCADE,
            plan_id        bigint NOT NULL,
            rep_id         bigint REFERENCES users (id) ON DELETE SET NULL,
            contact_id     bigint REFERENCES contacts (id) ON DELETE CASCADE,
            eta            timestamptz NOT NULL,
            channel        text NOT NULL CHECK (channel IN ('sms', 'email')),
            notices        integer NOT NULL DEFAULT 1,
            sent_at        timestamptz NOT NULL DEFAULT now()
        );

        ALTER TABLE engage_outbox ADD COLUMN not_before timestamptz;

        ALTER TABLE engage_conversations ADD COLUMN team_mailbox_id bigint
            REFERENCES engage_mailboxes (id) ON DELETE SET NULL;
        CREATE INDEX engage_conversations_team ON engage_conversations (team_mailbox_id)
            WHERE team_mailbox_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE engage_eta_notices;
        ALTER TABLE engage_outbox DROP COLUMN not_before;
        ALTER TABLE engage_conversations DROP COLUMN team_mailbox_id;
        """
    )
