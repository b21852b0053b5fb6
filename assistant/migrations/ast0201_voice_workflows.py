"""assistant: voice-triggered workflows. The message log names the workflow command a
message started (`command`: start_route, escalate_alert, automation:<workflow id>), for
the analytics per command; `assistant_route_starts` holds the one start of each rep's
route per day (when, the plan, the first stop and its ETA, what the customer was told).

Revision ID: ast0201_voice_workflows
Revises: ast0101
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ast0201_voice_workflows"
down_revision = "ast0101"
branch_labels = None
depends_on = ("r0001",)  # routing_plans


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE assistant_messages ADD COLUMN command text
            CHECK (command IS NULL OR length(command) BETWEEN 1 AND 60);

        CREATE TABLE assistant_route_starts (
            user_id             bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            day                 date NOT NULL,
            started_at          timestamptz NOT NULL DEFAULT now(),
            plan_id             bigint REFERENCES routing_plans (id) ON DELETE SET NULL,
            stops               integer NOT NULL CHECK (stops > 0),
            first_account_id    bigint,
            first_work_order_id bigint,
            first_eta           timestamptz,
            eta_channel         text,
            PRIMARY KEY (user_id, day)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE assistant_route_starts; ALTER TABLE assistant_messages DROP COLUMN command"
    )
