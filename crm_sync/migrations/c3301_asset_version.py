"""crm_sync: assets get a version, for ETag / If-Match as the CRM's records have.

Every update of an asset, by whichever writer (the API, device enrolment, the demo world),
bumps its version and updated_at in a trigger, so an ETag read before any change is stale
after it.

Revision ID: c3301
Revises: s0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c3301"
down_revision = "s0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE assets ADD COLUMN version integer NOT NULL DEFAULT 1;

        CREATE FUNCTION assets_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW IS DISTINCT FROM OLD THEN
                NEW.version := OLD.version + 1;
                NEW.updated_at := now();
            END IF;
            RETURN NEW;
        END $$;

        CREATE TRIGGER assets_version BEFORE UPDATE ON assets
            FOR EACH ROW EXECUTE FUNCTION assets_bump_version();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER assets_version ON assets;
        DROP FUNCTION assets_bump_version();
        ALTER TABLE assets DROP COLUMN version;
        """
    )
