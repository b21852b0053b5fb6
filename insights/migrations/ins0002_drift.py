"""insights: drift alerts of live inputs and scores against a model's training data.

Revision ID: ins0002
Revises: ins0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0002"
down_revision = "ins0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One alert per model version and drifting feature (`__score__`: the scores) while
        -- it stays raised; `psi` is the population stability index when it was last checked.
        CREATE TABLE insights_drift (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            model         text        NOT NULL,
            model_version text        NOT NULL,
            feature       text        NOT NULL,
            psi           double precision NOT NULL,
            live_rows     integer     NOT NULL,
            state         text        NOT NULL DEFAULT 'raised' CHECK (state IN ('raised', 'cleared')),
            raised_at     timestamptz NOT NULL DEFAULT now(),
            checked_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX insights_drift_raised
            ON insights_drift (model, model_version, feature) WHERE state = 'raised';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE insights_drift;")
