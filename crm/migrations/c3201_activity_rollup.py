"""crm: activities rolled up per UTC hour, day and month with their type, status, source,
owner and territory, kept exact by statement-level triggers, so a grouped activity report
reads thousands of groups instead of millions of activities (`crm.rollups`).

`activity_rollup_{hour,day,month}` each hold rows of (occurred_at period, type, status,
source, owner_id, territory_id, stripe) with a number of activities `n`; a group's count
is the sum of its stripes' (`crm.rollups.source_sql`). Their `occurred_at` is the start of
the UTC period the activities occurred in, so a filter or an access clause written for
activities reads the same against them. Three grains because a group holds the
activities of one owner in one period: at a rep's few activities an hour the hourly table
is hardly smaller than the activities, the monthly one some hundred times smaller; the
hourly one is there for time zones other than UTC (a local day is a whole number of UTC
hours in most zones, not of UTC days).

The triggers add the statement's new rows and subtract its old ones (transition tables),
one grouped upsert per grain and statement, and delete the rows that reached zero; a
TRUNCATE of activities empties them. Stripes: a writer adds to its own stripe (its
backend pid modulo STRIPES), so concurrent writers of one group (one user creating
activities from several connections) seldom wait for each other's commit on one row; an
activity inserted in one stripe and deleted in another leaves +1 and -1 that sum to
zero. Whoever loads activities with the triggers disabled (crm.seed) calls
`crm_activity_rollup_rebuild()` afterwards.

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

GRAINS = ("hour", "day", "month")
_KEY = "occurred_at, type, status, source, owner_id, territory_id, stripe"
STRIPES = 8


def _rows(grain: str, rows: str, sign: str = "", stripe: str = "0::smallint") -> str:
    """A transition table's (or the activities') rows as rollup keys."""
    extra = f", {sign}1 AS n" if sign else ""
    return (
        f"SELECT date_trunc('{grain}', occurred_at, 'UTC') AS occurred_at, type, status,"
        f" source, owner_id, territory_id, {stripe} AS stripe{extra} FROM {rows}"
    )


def _apply(grain: str, op_: str) -> str:
    """One grain's grouped upsert for one trigger event: +1 per new row, -1 per old row,
    summed per group, groups in key order (two statements lock shared groups in the same
    order)."""
    table = f"activity_rollup_{grain}"
    if op_ == "INSERT":
        source = _rows(grain, "new_rows", "+", "my_stripe")
    elif op_ == "DELETE":
        source = _rows(grain, "old_rows", "-", "my_stripe")
    else:
        source = (
            f"{_rows(grain, 'new_rows', '+', 'my_stripe')}"
            f" UNION ALL {_rows(grain, 'old_rows', '-', 'my_stripe')}"
        )
    return f"""
                INSERT INTO {table} AS r ({_KEY}, n)
                SELECT {_KEY}, sum(d.n) FROM ({source}) d
                GROUP BY {_KEY} HAVING sum(d.n) <> 0 ORDER BY {_KEY}
                ON CONFLICT ({_KEY}) DO UPDATE SET n = r.n + excluded.n;"""


def _settle(grain: str) -> str:
    return f"""
                DELETE FROM activity_rollup_{grain} WHERE n = 0;"""


def upgrade() -> None:
    for grain in GRAINS:
        table = f"activity_rollup_{grain}"
        op.execute(
            f"""
            CREATE TABLE {table} (
                occurred_at  timestamptz NOT NULL,  -- start of the UTC {grain}
                type         text NOT NULL,
                status       text NOT NULL,
                source       text NOT NULL,
                owner_id     bigint,
                territory_id bigint,
                stripe       smallint NOT NULL,  -- the writer's: see STRIPES
                n            bigint NOT NULL     -- may be below zero in one stripe
            );
            CREATE UNIQUE INDEX {table}_key ON {table} ({_KEY}) NULLS NOT DISTINCT;
            -- the rows a statement emptied (always near-empty)
            CREATE INDEX {table}_settle ON {table} (n) WHERE n = 0;
            """
        )
    on_insert = "".join(_apply(g, "INSERT") for g in GRAINS)
    on_update = "".join(_apply(g, "UPDATE") for g in GRAINS)
    on_delete = "".join(_apply(g, "DELETE") for g in GRAINS)
    settle = "".join(_settle(g) for g in GRAINS)
    rebuild = "".join(
        f"DELETE FROM activity_rollup_{g}; INSERT INTO activity_rollup_{g} ({_KEY}, n)"
        f" SELECT {_KEY}, count(*) FROM ({_rows(g, 'activities')}) d GROUP BY {_KEY};\n"
        for g in GRAINS
    )
    truncate = " ".join(f"TRUNCATE activity_rollup_{g};" for g in GRAINS)
    op.execute(
        f"""
        CREATE FUNCTION crm_activity_rollup_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            my_stripe smallint := (pg_backend_pid() % {STRIPES})::smallint;
        BEGIN
            IF TG_OP = 'INSERT' THEN{on_insert}
                RETURN NULL;  -- counts only grew
            ELSIF TG_OP = 'DELETE' THEN{on_delete}
            ELSE{on_update}
            END IF;{settle}
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
            {truncate}
            RETURN NULL;
        END $$;
        CREATE TRIGGER activities_rollup_truncate AFTER TRUNCATE ON activities
            FOR EACH STATEMENT EXECUTE FUNCTION crm_activity_rollup_truncate();

        -- the rollups recomputed from the activities (after a load with triggers disabled)
        CREATE FUNCTION crm_activity_rollup_rebuild() RETURNS void LANGUAGE sql AS $$
            LOCK TABLE activities IN SHARE MODE;
            {rebuild}
        $$;
        SELECT crm_activity_rollup_rebuild();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS activities_rollup_insert ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_update ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_delete ON activities;
        DROP TRIGGER IF EXISTS activities_rollup_truncate ON activities;
        DROP FUNCTION IF EXISTS crm_activity_rollup_apply, crm_activity_rollup_truncate,
            crm_activity_rollup_rebuild;
        DROP TABLE IF EXISTS activity_rollup_hour, activity_rollup_day, activity_rollup_month;
        """
    )
