"""calendars: the public endpoints' rate counters become sliding windows.

A fixed window lets a client send twice the limit across a window boundary (the limit
at the end of one window, the limit again at the start of the next), and a client that
was just refused is served again the moment the minute turns. The counter now keeps the
previous window's hits as well, and a request is counted against
`previous * (1 - elapsed fraction) + current` (the sliding-window approximation), so the
rate is bounded over any window-long span.

Revision ID: cbk0002
Revises: cbk0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "cbk0002"
down_revision = "cbk0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cal_rate_windows ADD COLUMN prev_hits integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE cal_rate_windows DROP COLUMN prev_hits")
