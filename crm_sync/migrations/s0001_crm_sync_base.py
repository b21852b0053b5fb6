"""crm_sync: assets at account sites, webhook subscriptions and the durable outbox.

Revision ID: s0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "s0001"
down_revision = None
branch_labels = ("crm_sync",)
depends_on = ("c0001", "t0001")


def upgrade() -> None:
    op.execute(
        """
        -- A device belongs to an asset (a pump, a compressor) installed at an account's site.
        -- The service contract fields set a work order's SLA and priority.
        CREATE TABLE assets (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            device_id        text UNIQUE,
            equipment_model  text NOT NULL CHECK (length(equipment_model) BETWEEN 1 AND 100),
            serial           text,
            installed_on     date,
            contract_tier    text NOT NULL DEFAULT 'standard'
                             CHECK (contract_tier IN ('basic', 'standard', 'premium')),
            sla_hours        integer NOT NULL DEFAULT 48 CHECK (sla_hours > 0),
            required_skills  text[] NOT NULL DEFAULT '{}',
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX assets_account ON assets (account_id);

        CREATE TABLE webhook_subscriptions (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            url         text NOT NULL,
            event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
            secret      text NOT NULL,
            active      boolean NOT NULL DEFAULT true,
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        -- One row per (subscription, event): written in the transaction of the change it
        -- reports, delivered later by the dispatcher; replay puts a row back to pending.
        CREATE TABLE webhook_outbox (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subscription_id bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
            event_id        text NOT NULL,
            event_type      text NOT NULL,
            payload         jsonb NOT NULL,
            status          text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'dead')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_status     integer,
            last_error      text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            delivered_at    timestamptz,
            UNIQUE (subscription_id, event_id)
        );
        CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
            WHERE status = 'pending';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_outbox; DROP TABLE webhook_subscriptions; DROP TABLE assets")
