"""Routing plans: one row per planning request, its stops (lockable, acceptable) and the
visits it could not serve, with reasons.

Revision ID: r0001
"""

from __future__ import annotations

from alembic import op

revision = "r0001"
down_revision = None
branch_labels = ("routing",)
depends_on = ("c0001",)  # territories, users, accounts, work_orders


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE routing_plans (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            territory_id  bigint REFERENCES territories (id) ON DELETE SET NULL,
            plan_date     date NOT NULL,
            status        text NOT NULL DEFAULT 'solving'
                          CHECK (status IN ('solving', 'ready', 'failed')),
            request       jsonb NOT NULL,
            problem       jsonb,
            result        jsonb,
            error         text,
            cpu_s         double precision,
            created_by    bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX routing_plans_territory_date ON routing_plans (territory_id, plan_date);

        CREATE TABLE routing_stops (
            plan_id        bigint NOT NULL REFERENCES routing_plans (id) ON DELETE CASCADE,
            visit_key      text NOT NULL,
            rep_id         bigint REFERENCES users (id) ON DELETE SET NULL,
            seq            integer NOT NULL CHECK (seq > 0),
            account_id     bigint REFERENCES accounts (id) ON DELETE CASCADE,
            work_order_id  bigint REFERENCES work_orders (id) ON DELETE SET NULL,
            eta            timestamptz NOT NULL,
            service_start  timestamptz NOT NULL,
            service_end    timestamptz NOT NULL,
            wait_s         double precision NOT NULL,
            slack_s        double precision NOT NULL,
            travel_s       double precision NOT NULL,
            distance_m     double precision NOT NULL,
            locked         boolean NOT NULL DEFAULT false,
            accepted_at    timestamptz,
            PRIMARY KEY (plan_id, visit_key)
        );
        CREATE INDEX routing_stops_rep ON routing_stops (rep_id, service_start);

        CREATE TABLE routing_dropped (
            plan_id    bigint NOT NULL REFERENCES routing_plans (id) ON DELETE CASCADE,
            visit_key  text NOT NULL,
            reason     text NOT NULL,
            message    text NOT NULL,
            PRIMARY KEY (plan_id, visit_key)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS routing_dropped, routing_stops, routing_plans CASCADE;")
