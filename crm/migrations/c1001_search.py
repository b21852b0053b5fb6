"""crm: global search: trigram indexes (pg_trgm) over the text a person searches records by,
so a typo-tolerant, ranked search stays an index scan at a million contacts.

The indexed expressions are `crm.search.DOCUMENTS`: change both together.

Revision ID: c1001
Revises: c0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c1001"
down_revision = "c0002"
branch_labels = None
depends_on = None

INDEXES = {
    "accounts_search_trgm": ("accounts", "(coalesce(name, ''))"),
    "contacts_search_trgm": (
        "contacts",
        "((coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' ||"
        " coalesce(company_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '')))",
    ),
    "leads_search_trgm": (
        "leads",
        "((coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' ||"
        " coalesce(company, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '')))",
    ),
    "opportunities_search_trgm": ("opportunities", "(coalesce(name, ''))"),
    "work_orders_search_trgm": ("work_orders", "(coalesce(title, ''))"),
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, expr) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({expr} gin_trgm_ops)")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
