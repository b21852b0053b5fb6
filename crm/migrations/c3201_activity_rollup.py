"""crm: activities rolled up per UTC hour, type, status, source, owner and territory, kept
exact by statement-level triggers, so a grouped activity report reads thousands of rollup
rows instead of millions of activities (`crm.rollups`).

`activity_rollup` holds one row per (occurred_at hour, type, status, source, owner_id,
territory_id) with the number of activities `n` (> 0: a group that empties is deleted).
Its `occurred_at` is the start of the UTC hour the activities occurred in, so a filter or
an access clause written for activities reads the same against it. The triggers add the
statement's new rows and subtract its old ones (transition tables), one grouped upsert
per statement; a TRUNCATE of activities empties it. Whoever loads activities with the
triggers disabled (crm.seed) calls `crm_activity_rollup_rebuild()` afterwards.

Revision ID: c3201
Revises: c3101
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c3201"
down_revision = "c3101"
branch_labels = None
depends_on = None

_KEY = "occurred_at, type, status, source, owner_id, territory_id"
# the rows of a transition table as rollup keys
_ROWS = (
    "date_trunc('hour', occurred_at, 'UTC') AS occurred_at, type, status, source,"
    " owner_id, territory_id"
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE activity_rollup (
            occurred_at  timestamptz NOT NULL,  -- start of the UTC hour
            type         text NOT NULL,
            status       text NOT NULL,
            source       text NOT NULL,
            owner_id     bigint,
            territory_id bigint,
            n            bigint NOT NULL
        );
        CREATE UNIQUE INDEX activity_rollup_key ON activity_rollup ({_KEY}) NULLS NOT DISTINCT;
        -- a rep's report reads their territory's and their own groups
        CREATE INDEX activity_rollup_territory ON activity_rollup (territory_id);
        CREATE INDEX activity_rollup_owner ON activity_rollup (owner_id);
        -- the groups a statement emptied (always near-empty)
        CREATE INDEX activity_rollup_empty ON activity_rollup (n) WHERE n <= 0;

        CREATE FUNCTION crm_activity_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- +1 per new row, -1 per old row, summed per group; groups in key order so
            -- that two statements lock shared groups in the same order
            IF TG_OP = 'INSERT' THEN
                INSERT INTO activity_rollup AS r ({_KEY}, n)
                SELECT {_KEY}, count(*) FROM (SELECT {_ROWS} FROM new_rows) d
                GROUP BY {_KEY} ORDER BY {_KEY}
                ON CONFLICT ({_KEY}) DO UPDATE SET n = r.n + excluded.n;
                RETURN NULL;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO activity_rollup AS r ({_KEY}, n)
                SELECT {_KEY}, -count(*) FROM (SELECT {_ROWS} FROM old_rows) d
                GROUP BY {_KEY} ORDER BY {_KEY}
                ON CONFLICT ({_KEY}) DO UPDATE SET n = r.n + excluded.n;
            ELSE
                INSERT INTO activity_rollup AS r ({_KEY}, n)
                SELECT {_KEY}, sum(d.n) FROM (
                    SELECT {_ROWS}, 1 AS n FROM new_rows
                    UNION ALL SELECT {_ROWS}, -1 AS n FROM old_rows
                ) d
                GROUP BY {_KEY} HAVING sum(d.n) <> 0 ORDER BY {_KEY}
                ON CONFLICT ({_KEY}) DO UPDATE SET n = r.n + excluded.n;
            END IF;
            -- a negative count: rows that never were counted (triggers disabled, no rebuild)
            IF EXISTS (SELECT FROM activity_rollup WHERE n < 0) THEN
                RAISE EXCEPTION 'activity_rollup is out of step with activities'
                    USING HINT = 'SELECT crm_activity_rollup_rebuild()';
            END IF;
            DELETE FROM activity_rollup WHERE n = 0;
            RETURN NULL;
        END $$;

        CREATE TRIGGER activities_rollup_insert AFTER INSERT ON activities
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION crm_activity_rollup_apply();
        CREATE TRIGGER activities_rollup_update AFTER UPDATE ON activities
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION crm_activity_rollup_apply();
        CREATE TRIGGER activities_rollup_delete AFTER DELETE ON activities
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION crm_activity_rollup_apply();

        CREATE FUNCTION crm_activity_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE activity_rollup;
            RETURN NULL;
        END $$;
        CREATE TRIGGER activities_rollup_truncate AFTER TRUNCATE ON activities
            FOR EACH STATEMENT EXECUTE FUNCTION crm_activity_rollup_truncate();

        -- the rollup recomputed from the activities (after a load with triggers disabled)
        CREATE FUNCTION crm_activity_rollup_rebuild() RETURNS void LANGUAGE sql AS $$
            LOCK TABLE activities IN SHARE MODE;
            DELETE FROM activity_rollup;
            INSERT INTO activity_rollup ({_KEY}, n)
            SELECT {_KEY}, count(*) FROM (SELECT {_ROWS} FROM activities) d GROUP BY {_KEY};
        $$;
        SELECT crm_activity_rollup_rebuild();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS activity_rollup;
        DROP TRIGGER IF EXISTS activities_rollup_insert ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_update ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_delete ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_truncate ON activities;
        DROP FUNCTION IF EXISTS crm_activity_rollup_apply, crm_activity_rollup_truncate,
            crm_activity_rollup_rebuild;
        """
    )
