"""crm: saved reports and dashboards. A report's definition is `crm.reports.ReportDefinition`
as JSON; it always runs under the caller's record-level access, so sharing a report shares
its question, never rows the other user may not see. A dashboard is an ordered list of
report tiles.

Revision ID: c1002
Revises: c1001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c1002"
down_revision = "c1001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE saved_reports (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            description text CHECK (length(description) <= 2000),
            definition  jsonb NOT NULL,
            owner_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            shared      boolean NOT NULL DEFAULT false,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX saved_reports_owner ON saved_reports (owner_id);
        CREATE TABLE dashboards (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            owner_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            shared     boolean NOT NULL DEFAULT false,
            tiles      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tiles) = 'array'),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX dashboards_owner ON dashboards (owner_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE dashboards, saved_reports")
