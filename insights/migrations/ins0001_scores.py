"""insights: live scores of CRM records (with model version and reasons) and maintenance
predictions of assets (one work order per prediction).

Revision ID: ins0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0001"
down_revision = None
branch_labels = ("insights",)
depends_on = ("c0001", "tm002", "s0001")


def upgrade() -> None:
    op.execute(
        """
        -- The latest score of a record by a model: lead score, opportunity win probability,
        -- account health. `reasons` are the top feature contributions (see insights.live).
        CREATE TABLE insights_score (
            entity        text        NOT NULL CHECK (entity IN ('leads', 'opportunities', 'accounts')),
            record_id     bigint      NOT NULL,
            model         text        NOT NULL,
            model_version text        NOT NULL,
            probability   double precision CHECK (probability BETWEEN 0 AND 1),
            score         smallint    NOT NULL CHECK (score BETWEEN 0 AND 100),
            reasons       jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(reasons) = 'array'),
            computed_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (entity, record_id, model)
        );
        CREATE INDEX insights_score_model ON insights_score (model, score);

        -- A failure predicted for an asset's device: at most one open prediction per device
        -- and model, so a device that keeps predicting failure opens one work order, not a storm.
        CREATE TABLE insights_failure_prediction (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id            text        NOT NULL,
            asset_id             bigint      REFERENCES assets (id) ON DELETE CASCADE,
            model                text        NOT NULL,
            model_version        text        NOT NULL,
            probability          double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
            horizon_days         double precision NOT NULL,
            predicted_failure_by timestamptz NOT NULL,
            reasons              jsonb       NOT NULL DEFAULT '[]',
            alert_id             text,
            work_order_id        bigint,
            state                text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
            created_at           timestamptz NOT NULL DEFAULT now(),
            closed_at            timestamptz
        );
        CREATE UNIQUE INDEX insights_failure_prediction_open
            ON insights_failure_prediction (device_id, model) WHERE state = 'open';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE insights_failure_prediction; DROP TABLE insights_score;")
