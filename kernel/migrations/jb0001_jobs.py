"""kernel: the job queue (kernel.jobs) and the periodic schedule's last slots.

Revision ID: jb0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "jb0001"
down_revision = None
branch_labels = ("kernel",)
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per job. A worker claims a due row with FOR UPDATE SKIP LOCKED and holds
        -- it by a lease (locked_until) that it renews while the handler runs: a worker that
        -- dies loses the lease and another worker takes the job again.
        CREATE TABLE jobs (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            task          text NOT NULL CHECK (length(task) BETWEEN 1 AND 200),
            args          jsonb NOT NULL DEFAULT '{}',
            status        text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'running', 'done', 'failed')),
            attempts      integer NOT NULL DEFAULT 0,
            max_attempts  integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
            run_after     timestamptz NOT NULL DEFAULT now(),
            locked_until  timestamptz,
            worker        text,
            dedupe_key    text,
            last_error    text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            started_at    timestamptz,
            finished_at   timestamptz
        );
        -- What workers scan: only live rows, in due order.
        CREATE INDEX jobs_due ON jobs (run_after, id) WHERE status IN ('queued', 'running');
        -- At most one queued job per dedupe key (a second enqueue moves it earlier).
        CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
            WHERE status = 'queued' AND dedupe_key IS NOT NULL;
        CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('done', 'failed');

        -- The last time slot each periodic task was enqueued for: one UPDATE decides which
        -- worker enqueues it, so N workers never enqueue a slot twice.
        CREATE TABLE job_periodic (
            name       text PRIMARY KEY,
            last_slot  bigint NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE job_periodic; DROP TABLE jobs;")
