"""geo: geofences, live engine state, geofence events, flagged fixes, visits.

Builds on crm's territories/accounts/users (c0001) and telemetry's gps_fix (t0001).

Revision ID: g0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "g0001"
down_revision = None
branch_labels = ("geo",)
depends_on = ("c0001", "t0001")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE geofences (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL DEFAULT '',
            kind       text NOT NULL CHECK (kind IN ('polygon', 'circle')),
            -- a (Multi)Polygon, or the centre Point of a circle
            geom       geography(Geometry, 4326) NOT NULL,
            radius_m   double precision CHECK (radius_m > 0 AND radius_m <= 100000),
            dwell_s    double precision CHECK (dwell_s >= 0),
            account_id bigint REFERENCES accounts (id) ON DELETE CASCADE,
            device_id  text,
            rep_id     bigint REFERENCES users (id) ON DELETE CASCADE,
            auto       boolean NOT NULL DEFAULT false,  -- generated around an account's site
            active     boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((kind = 'circle') = (radius_m IS NOT NULL)),
            CHECK (kind = 'circle' OR GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')),
            CHECK (kind = 'polygon' OR GeometryType(geom) = 'POINT')
        );
        CREATE INDEX geofences_geom ON geofences USING gist (geom);
        CREATE INDEX geofences_account ON geofences (account_id);
        CREATE UNIQUE INDEX geofences_auto_account ON geofences (account_id) WHERE auto;

        -- Bumped by every change to geofences: live engines reload when it moves.
        CREATE TABLE geo_fence_revision (
            id       smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            revision bigint NOT NULL DEFAULT 0
        );
        INSERT INTO geo_fence_revision VALUES (1, 0);
        CREATE FUNCTION geo_bump_fence_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE geo_fence_revision SET revision = revision + 1 WHERE id = 1;
            RETURN NULL;
        END $$;
        CREATE TRIGGER geofences_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON geofences FOR EACH STATEMENT EXECUTE FUNCTION geo_bump_fence_revision();

        -- The live engine's per-subject state (geo.engine.Engine.export_state).
        CREATE TABLE geo_subject_state (
            subject_id text PRIMARY KEY,
            state      jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- Which rep carries a phone: visits are logged as that rep's activities.
        CREATE TABLE geo_device_rep (
            device_id text PRIMARY KEY,
            user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE
        );

        CREATE TABLE geo_events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subject_id  text NOT NULL,
            fence_id    bigint NOT NULL,  -- no FK: the history outlives a deleted fence
            kind        text NOT NULL CHECK (kind IN ('enter', 'exit', 'dwell')),
            at          timestamptz NOT NULL,
            lon         double precision NOT NULL,
            lat         double precision NOT NULL,
            entered_at  timestamptz,
            account_id  bigint,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (subject_id, fence_id, kind, at)
        );
        CREATE INDEX geo_events_subject ON geo_events (subject_id, at);
        CREATE INDEX geo_events_fence ON geo_events (fence_id, at);

        CREATE TABLE geo_flagged_fixes (
            subject_id  text NOT NULL,
            time        timestamptz NOT NULL,
            reason      text NOT NULL,
            lon         double precision NOT NULL,
            lat         double precision NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (subject_id, time, reason)
        );

        CREATE TABLE visits (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subject_id    text NOT NULL,
            fence_id      bigint NOT NULL,
            account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            rep_id        bigint REFERENCES users (id) ON DELETE SET NULL,
            arrived_at    timestamptz NOT NULL,
            checked_in_at timestamptz NOT NULL,
            departed_at   timestamptz,
            duration_s    double precision,
            activity_id   bigint REFERENCES activities (id) ON DELETE SET NULL,
            status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed')),
            UNIQUE (subject_id, fence_id, arrived_at),
            CHECK (departed_at IS NULL OR departed_at >= arrived_at)
        );
        CREATE INDEX visits_account ON visits (account_id, arrived_at);
        CREATE INDEX visits_rep ON visits (rep_id, arrived_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS visits, geo_flagged_fixes, geo_events, geo_device_rep,
            geo_subject_state, geo_fence_revision, geofences CASCADE;
        DROP FUNCTION IF EXISTS geo_bump_fence_revision;
        """
    )
