"""insights: who activated which model version and when (activations and rollbacks).

Revision ID: ins0201
Revises: ins0100
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ins0201"
down_revision = "ins0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per change of a model's active version (maintenance_model.active):
        -- a training run that activates its new version, or a person activating a
        -- recorded version (an older one being a rollback) through the API (activated_by:
        -- the user) or the command line (an operator of the deployment: no user).
        CREATE TABLE insights_model_activation (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            model            text NOT NULL,
            version          text NOT NULL,
            previous_version text,
            activated_via    text NOT NULL CHECK (activated_via IN ('training', 'api', 'cli')),
            activated_by     bigint REFERENCES users (id) ON DELETE SET NULL,
            activated_at     timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (model, version) REFERENCES maintenance_model (name, version)
                ON DELETE CASCADE
        );
        CREATE INDEX insights_model_activation_model
            ON insights_model_activation (model, activated_at DESC, id DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE insights_model_activation")
