"""engage: IMAP passwords of connected mailboxes sealed at rest (`kernel.secretbox`).

Rows written before this revision hold the password in plain text; they are sealed here
under the deployment's key (FIELDMESH_SECRET_KEYS, else state_dir/secret.key: the same
settings the running services read). Downgrade opens them again.

Revision ID: eng0100
Revises: eng0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kernel import secretbox
from kernel.settings import load_settings

revision = "eng0100"
down_revision = "eng0001"
branch_labels = None
depends_on = None


def _rewrite(seal: bool) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, imap_password FROM engage_mailboxes WHERE imap_password IS NOT NULL")
    ).all()
    todo = [(i, pw) for i, pw in rows if secretbox.is_sealed(pw) != seal]
    if not todo:
        return  # no settings needed (a fresh database)
    settings = load_settings()
    for mailbox_id, pw in todo:
        value = secretbox.seal(settings, pw) if seal else secretbox.open_(settings, pw)
        bind.execute(
            sa.text("UPDATE engage_mailboxes SET imap_password = :pw WHERE id = :id"),
            {"pw": value, "id": mailbox_id},
        )


def upgrade() -> None:
    _rewrite(seal=True)


def downgrade() -> None:
    _rewrite(seal=False)
