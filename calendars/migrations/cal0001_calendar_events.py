"""calendars: CalDAV sync accounts, calendar events (linked to CRM activities, work orders,
planned visits and visit cadences), recurrence overrides, attendees, iTIP messages, ICS
feed tokens.

Every time is `timestamptz` (UTC) beside the event's IANA zone (`tz`): a recurring event
expands in its zone, so 10:00 Berlin stays 10:00 across a DST change.

Revision ID: cal0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "cal0001"
down_revision = None
branch_labels = ("calendars",)
depends_on = ("c0002", "r0001")  # users, activities, work_orders, accounts, contacts; routing_stops


def upgrade() -> None:
    op.execute(
        """
        -- One per user who opted in to calendar sync. The password is the one fieldmesh
        -- generated for the embedded server's account (or the user's app password on an
        -- external server): fieldmesh presents it on every sync, so it is kept.
        CREATE TABLE cal_accounts (
            user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
            enabled        boolean NOT NULL DEFAULT true,
            server_url     text NOT NULL,
            username       text NOT NULL,
            password       text NOT NULL,
            calendar_url   text,
            sync_token     text,
            -- CRM rows changed after this were not projected yet (minus an overlap)
            projected_at   timestamptz,
            last_sync_at   timestamptz,
            last_error     text,
            rounds         bigint NOT NULL DEFAULT 0,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE cal_events (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            owner_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            uid            text NOT NULL CHECK (length(uid) BETWEEN 1 AND 500),
            -- what in the CRM the event shows; source_key is unique per owner
            kind           text NOT NULL CHECK (kind IN ('activity', 'work_order', 'visit', 'cadence')),
            source_key     text NOT NULL,
            activity_id    bigint REFERENCES activities (id) ON DELETE SET NULL,
            work_order_id  bigint REFERENCES work_orders (id) ON DELETE SET NULL,
            account_id     bigint REFERENCES accounts (id) ON DELETE SET NULL,
            summary        text NOT NULL DEFAULT '',
            description    text NOT NULL DEFAULT '',
            location       text NOT NULL DEFAULT '',
            tz             text NOT NULL DEFAULT 'UTC',
            start_at       timestamptz NOT NULL,
            end_at         timestamptz NOT NULL,
            all_day        boolean NOT NULL DEFAULT false,
            rrule          text,
            exdates        timestamptz[] NOT NULL DEFAULT '{}',
            status         text NOT NULL DEFAULT 'CONFIRMED'
                           CHECK (status IN ('CONFIRMED', 'TENTATIVE', 'CANCELLED')),
            transparent    boolean NOT NULL DEFAULT false,
            organizer      text,
            sequence       integer NOT NULL DEFAULT 0,
            -- sync state: local_rev moves on every local change, pushed_rev when the
            -- server has it; base is the content both sides agreed on at the last sync
            -- (the common ancestor of the three-way merge)
            local_rev      bigint NOT NULL DEFAULT 1,
            pushed_rev     bigint NOT NULL DEFAULT 0,
            href           text,
            etag           text,
            base           jsonb,
            deleted        boolean NOT NULL DEFAULT false,  -- gone in the CRM: delete remotely
            remote_changed_at timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            UNIQUE (owner_id, uid),
            UNIQUE (owner_id, source_key),
            CHECK (start_at <= end_at)
        );
        CREATE INDEX cal_events_dirty ON cal_events (owner_id)
            WHERE local_rev > pushed_rev OR deleted;
        CREATE INDEX cal_events_href ON cal_events (owner_id, href);
        CREATE INDEX cal_events_activity ON cal_events (activity_id);
        CREATE INDEX cal_events_orphans ON cal_events (owner_id)
            WHERE kind = 'activity' AND activity_id IS NULL AND NOT deleted;
        CREATE INDEX cal_events_recurring ON cal_events (owner_id)
            WHERE rrule IS NOT NULL AND NOT deleted;
        CREATE INDEX cal_events_time ON cal_events (owner_id, start_at);

        -- Moved or changed instances of a recurring event (RECURRENCE-ID); a cancelled
        -- instance is an EXDATE of the event instead.
        CREATE TABLE cal_overrides (
            event_id       bigint NOT NULL REFERENCES cal_events (id) ON DELETE CASCADE,
            recurrence_id  timestamptz NOT NULL,
            start_at       timestamptz NOT NULL,
            end_at         timestamptz NOT NULL,
            summary        text,
            cancelled      boolean NOT NULL DEFAULT false,
            PRIMARY KEY (event_id, recurrence_id),
            CHECK (start_at <= end_at)
        );

        CREATE TABLE cal_attendees (
            event_id       bigint NOT NULL REFERENCES cal_events (id) ON DELETE CASCADE,
            email          text NOT NULL CHECK (email LIKE '%_@_%'),
            name           text NOT NULL DEFAULT '',
            role           text NOT NULL DEFAULT 'REQ-PARTICIPANT',
            partstat       text NOT NULL DEFAULT 'NEEDS-ACTION' CHECK (partstat IN (
                'NEEDS-ACTION', 'ACCEPTED', 'DECLINED', 'TENTATIVE', 'DELEGATED')),
            contact_id     bigint REFERENCES contacts (id) ON DELETE SET NULL,
            replied_at     timestamptz,
            PRIMARY KEY (event_id, email)
        );

        -- iTIP (RFC 5546) messages: generated and kept here; the e-mail issue's sender
        -- picks up the unsent ones (sent_at IS NULL) and marks them sent.
        CREATE TABLE cal_itip (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id       bigint REFERENCES cal_events (id) ON DELETE SET NULL,
            activity_id    bigint REFERENCES activities (id) ON DELETE SET NULL,
            method         text NOT NULL CHECK (method IN ('REQUEST', 'REPLY', 'CANCEL')),
            direction      text NOT NULL CHECK (direction IN ('out', 'in')),
            recipient      text NOT NULL,
            sequence       integer NOT NULL,
            ics            text NOT NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            sent_at        timestamptz
        );
        CREATE INDEX cal_itip_unsent ON cal_itip (id) WHERE sent_at IS NULL AND direction = 'out';
        CREATE INDEX cal_itip_activity ON cal_itip (activity_id);

        -- Subscription feeds: the URL carries a random token; only its SHA-256 is kept.
        CREATE TABLE cal_feeds (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope          text NOT NULL CHECK (scope IN ('user', 'team')),
            user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name           text NOT NULL DEFAULT '',
            token_hash     bytea NOT NULL UNIQUE,
            prefix         text NOT NULL,
            created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            revoked_at     timestamptz
        );
        CREATE INDEX cal_feeds_user ON cal_feeds (user_id);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS cal_feeds, cal_itip, cal_attendees, cal_overrides, cal_events, "
        "cal_accounts CASCADE;"
    )
