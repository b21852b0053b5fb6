"""calendars: CalDAV passwords sealed at rest (kernel.secretbox), existing rows included.

`cal_accounts.password` held the external server's app password (or the embedded
server's generated one) in plain text. From now on it holds `fm1:<Fernet token>`; this
migration seals the rows written before, with the deployment's key
(FIELDMESH_SECRET_KEYS, else state_dir/secret.key: the settings of the process that
migrates, which are the app's). Sealing twice is impossible (sealed rows are skipped),
so a re-run does nothing. The downgrade opens them again.

Revision ID: cal0100
Revises: cal0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cal0100"
down_revision = "cal0001"
branch_labels = None
depends_on = None


def _rows() -> list[tuple[int, str]]:
    got = op.get_bind().execute(sa.text("SELECT user_id, password FROM cal_accounts"))
    return [(int(r[0]), str(r[1])) for r in got]


def _write(user_id: int, value: str) -> None:
    op.get_bind().execute(
        sa.text("UPDATE cal_accounts SET password = :v WHERE user_id = :u"),
        {"v": value, "u": user_id},
    )


def upgrade() -> None:
    from kernel import secretbox
    from kernel.settings import load_settings

    plain = [(u, p) for u, p in _rows() if not secretbox.is_sealed(p)]
    if not plain:
        return  # a new database: no key is needed, none is made
    settings = load_settings()
    for user_id, password in plain:
        _write(user_id, secretbox.seal(settings, password))


def downgrade() -> None:
    from kernel import secretbox
    from kernel.settings import load_settings

    sealed = [(u, p) for u, p in _rows() if secretbox.is_sealed(p)]
    if not sealed:
        return
    settings = load_settings()
    for user_id, value in sealed:
        _write(user_id, secretbox.open_(settings, value))
