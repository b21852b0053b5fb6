"""crm_sync: who may see a device (the record scope of telemetry, GPS, alerts and commands).

A device is equipment installed on an asset at an account's site (visible as the account
is: its territory and owner), or a rep's phone (visible as the rep is: the rep's territory,
and the rep as owner). A device in neither is seen only by admins and viewers.

Revision ID: s0003
Revises: s0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = ("g0001",)


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW device_scope AS
        SELECT a.device_id, acc.territory_id, acc.owner_id, a.account_id, NULL::bigint AS rep_id
        FROM assets a JOIN accounts acc ON acc.id = a.account_id
        WHERE a.device_id IS NOT NULL
        UNION ALL
        SELECT r.device_id, u.territory_id, u.id AS owner_id, NULL::bigint, u.id
        FROM geo_device_rep r JOIN users u ON u.id = r.user_id;
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW device_scope")
