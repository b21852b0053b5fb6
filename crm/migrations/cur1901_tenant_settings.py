"""crm: tenant-wide settings, starting with the default currency.

One row (`tenant_settings`, id 1: a deployment is one tenant). `default_currency` is the
currency a new account, lead or opportunity gets when none is given: the columns' default
was the constant 'USD', so a company working in euros saw USD on every record it created
without naming a currency. It is now `crm_default_currency()`, which reads the row, so
every writer (the API, CSV imports, lead conversion, other packages' inserts) gets the
tenant's currency without having to remember it. The row starts at USD, what the columns
gave before; admins change it (crm.tenant, PUT /api/v1/tenant/settings), where the code is
checked against ISO 4217 (the CHECK here only keeps the column's shape).

Revision ID: cur1901
Revises: c3201
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "cur1901"
down_revision = "c3201"
branch_labels = None
depends_on = None

_TABLES = ("accounts", "leads", "opportunities")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenant_settings (
            id               integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            default_currency char(3) NOT NULL DEFAULT 'USD'
                             CHECK (default_currency ~ '^[A-Z]{3}$'),
            updated_by       bigint REFERENCES users (id) ON DELETE SET NULL,
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO tenant_settings (id) VALUES (1);

        CREATE FUNCTION crm_default_currency() RETURNS char(3)
            LANGUAGE sql STABLE PARALLEL SAFE
            AS $$ SELECT coalesce((SELECT default_currency FROM tenant_settings
                                    WHERE id = 1), 'USD')::char(3) $$;
        """
    )
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN currency SET DEFAULT crm_default_currency()")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN currency SET DEFAULT 'USD'")
    op.execute("DROP FUNCTION crm_default_currency(); DROP TABLE tenant_settings;")
