"""calendars (part B): bookable resources, conflict-free bookings, working hours,
reminders, self-booking links, attendance outcomes, and the public endpoint's rate windows.

Double booking is impossible in the database, whatever the application does:

- a resource of capacity N has N unit rows (`cal_resource_units`, 1..N); a booking holds
  one unit, and an exclusion constraint (btree_gist: `resource_id =`, `unit =`,
  `during &&` on a tstzrange, for bookings not cancelled) forbids two overlapping bookings
  of one unit. So at most N bookings of a resource overlap at any instant, with no
  serialisable transaction and no lock: two concurrent requests for the last free unit
  cannot both commit (the second fails with exclusion_violation, 23P01). The application
  tries the units in order (a savepoint each) and answers 409 when none is free.
  Capacity 1 is the same constraint with one unit.
- Why per-unit rows rather than a SERIALIZABLE count check: the constraint holds for every
  writer and every isolation level, a conflict is found by an index probe, and a
  serialisation failure would need retries in every caller. The price: capacity only grows
  (new unit rows); shrinking would orphan bookings on the dropped units.

Revision ID: cbk0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "cbk0001"
down_revision = None
branch_labels = ("calendar_bookings",)
# users, territories, accounts, activities, work_orders (crm); notifications (notify)
depends_on = ("c0001", "ntf0001")


def upgrade() -> None:
    op.execute(
        """
        CREATE EXTENSION IF NOT EXISTS btree_gist;

        CREATE TABLE cal_resources (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            kind         text NOT NULL CHECK (kind IN ('room', 'vehicle', 'tool', 'equipment')),
            capacity     integer NOT NULL DEFAULT 1 CHECK (capacity BETWEEN 1 AND 100),
            territory_id bigint REFERENCES territories (id) ON DELETE SET NULL,
            active       boolean NOT NULL DEFAULT true,
            created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX cal_resources_name ON cal_resources (lower(name));

        CREATE TABLE cal_resource_units (
            resource_id bigint NOT NULL REFERENCES cal_resources (id) ON DELETE CASCADE,
            unit        integer NOT NULL CHECK (unit >= 1),
            PRIMARY KEY (resource_id, unit)
        );

        CREATE TABLE cal_bookings (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            resource_id bigint NOT NULL,
            unit        integer NOT NULL,
            during      tstzrange NOT NULL
                        CHECK (NOT isempty(during) AND lower_inc(during) AND NOT upper_inc(during)
                               AND NOT lower_inf(during) AND NOT upper_inf(during)),
            title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
            user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
            activity_id bigint REFERENCES activities (id) ON DELETE SET NULL,
            status      text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
            reschedules integer NOT NULL DEFAULT 0,
            created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (resource_id, unit) REFERENCES cal_resource_units (resource_id, unit)
                ON DELETE CASCADE,
            CONSTRAINT cal_bookings_no_overlap EXCLUDE USING gist
                (resource_id WITH =, unit WITH =, during WITH &&) WHERE (status = 'booked')
        );
        CREATE INDEX cal_bookings_user ON cal_bookings USING gist (user_id, during)
            WHERE status = 'booked';
        CREATE INDEX cal_bookings_activity ON cal_bookings (activity_id)
            WHERE activity_id IS NOT NULL;

        -- A user's working week in their IANA zone; without a row, users.shift_start ..
        -- shift_end Monday to Friday in users.timezone.
        CREATE TABLE cal_working_hours (
            user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
            tz         text NOT NULL CHECK (length(tz) BETWEEN 1 AND 64),
            -- [{"weekday": 0..6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}, ...]
            hours      jsonb NOT NULL CHECK (jsonb_typeof(hours) = 'array'),
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- A reminder of one meeting (activity) or booking for one user, `offset_min`
        -- before it starts. `sent_for_start` is the start it was sent for: a moved event
        -- is reminded again for its new time, never twice for the same one.
        CREATE TABLE cal_reminders (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            activity_id    bigint REFERENCES activities (id) ON DELETE CASCADE,
            booking_id     bigint REFERENCES cal_bookings (id) ON DELETE CASCADE,
            offset_min     integer NOT NULL CHECK (offset_min BETWEEN 0 AND 40320),
            sent_for_start timestamptz,
            sent_at        timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            CHECK ((activity_id IS NULL) <> (booking_id IS NULL)),
            UNIQUE (user_id, activity_id, booking_id, offset_min)
        );
        CREATE INDEX cal_reminders_activity ON cal_reminders (activity_id)
            WHERE activity_id IS NOT NULL;
        CREATE INDEX cal_reminders_booking ON cal_reminders (booking_id)
            WHERE booking_id IS NOT NULL;

        -- Public self-booking links (a rep's or a team's page). The token is an HMAC over
        -- the row (calendars/booking_links.py), never stored.
        CREATE TABLE cal_booking_links (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_ids     bigint[] NOT NULL CHECK (cardinality(user_ids) BETWEEN 1 AND 50),
            title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            duration_min integer NOT NULL CHECK (duration_min BETWEEN 5 AND 480),
            window_days  integer NOT NULL DEFAULT 14 CHECK (window_days BETWEEN 1 AND 84),
            account_id   bigint REFERENCES accounts (id) ON DELETE CASCADE,
            created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz NOT NULL,
            revoked_at   timestamptz,
            CHECK (expires_at > created_at)
        );

        -- What happened to a meeting: attended or no-show (analytics).
        CREATE TABLE cal_attendance (
            activity_id bigint PRIMARY KEY REFERENCES activities (id) ON DELETE CASCADE,
            outcome     text NOT NULL CHECK (outcome IN ('attended', 'no_show')),
            marked_by   bigint REFERENCES users (id) ON DELETE SET NULL,
            marked_at   timestamptz NOT NULL DEFAULT now()
        );

        -- Fixed-window counters of the public booking endpoints, shared by every worker.
        CREATE TABLE cal_rate_windows (
            key          text PRIMARY KEY,
            window_start timestamptz NOT NULL,
            hits         integer NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS cal_rate_windows, cal_attendance, cal_booking_links, cal_reminders,
            cal_working_hours, cal_bookings, cal_resource_units, cal_resources CASCADE;
        """
    )
