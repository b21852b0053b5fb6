"""telemetry (maintenance): registry of trained model versions with their cards.

Revision ID: tm001
Revises: t0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "tm001"
down_revision = "t0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE maintenance_model (
            name          text NOT NULL,
            version       text NOT NULL,
            kind          text NOT NULL,
            created_at    timestamptz NOT NULL,
            params        jsonb NOT NULL,
            metrics       jsonb NOT NULL,
            data          jsonb NOT NULL,
            artifact_path text NOT NULL,
            active        boolean NOT NULL DEFAULT false,
            PRIMARY KEY (name, version)
        );
        -- At most one active version per model name: the one the gateway scores with.
        CREATE UNIQUE INDEX maintenance_model_one_active
            ON maintenance_model (name) WHERE active;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE maintenance_model")
