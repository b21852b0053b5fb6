"""telemetry: devices, samples, GPS fixes, events, status, acks, idempotency keys, dead letters.

Revision ID: t0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from telemetry.schema import create_timeseries_tables, drop_timeseries_tables

revision = "t0001"
down_revision = None
branch_labels = ("telemetry",)
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    bind = op.get_bind()
    timescale = bool(
        bind.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).first()
    )
    op.execute(
        """
        CREATE TABLE device (
            device_id  text PRIMARY KEY,
            tenant     text NOT NULL,
            kind       text NOT NULL DEFAULT 'equipment' CHECK (kind IN ('equipment', 'phone')),
            name       text,
            public_key bytea,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- The idempotency key: one row per stored message. A redelivered or replayed
        -- message conflicts here and its contents are not written twice.
        CREATE TABLE ingest_message (
            device_id   text        NOT NULL,
            seq         bigint      NOT NULL,
            kind        text        NOT NULL,
            items       integer     NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (device_id, seq)
        );
        CREATE TABLE telemetry_latest (
            device_id text             NOT NULL,
            metric    text             NOT NULL,
            time      timestamptz      NOT NULL,
            value     double precision NOT NULL,
            PRIMARY KEY (device_id, metric)
        );
        CREATE TABLE device_status (
            device_id  text PRIMARY KEY,
            online     boolean     NOT NULL,
            changed_at timestamptz NOT NULL,
            firmware   text
        );
        CREATE TABLE device_event (
            device_id     text        NOT NULL,
            seq           bigint      NOT NULL,
            idx           integer     NOT NULL,
            event_id      text        NOT NULL UNIQUE,
            time          timestamptz NOT NULL,
            type          text        NOT NULL,
            data          jsonb       NOT NULL,
            sig           text,
            verified      boolean     NOT NULL DEFAULT false,
            verify_reason text,
            received_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (device_id, seq, idx)
        );
        CREATE INDEX device_event_time ON device_event (time);
        CREATE TABLE command_ack (
            device_id  text        NOT NULL,
            seq        bigint      NOT NULL,
            command_id text        NOT NULL,
            name       text        NOT NULL,
            ok         boolean     NOT NULL,
            detail     text        NOT NULL DEFAULT '',
            time       timestamptz NOT NULL,
            PRIMARY KEY (device_id, seq)
        );
        -- Whatever fails validation is kept whole, with the reason: never dropped.
        CREATE TABLE dead_letter (
            id          bigserial PRIMARY KEY,
            received_at timestamptz NOT NULL DEFAULT now(),
            topic       text        NOT NULL,
            device_id   text,
            reason      text        NOT NULL,
            detail      text        NOT NULL,
            payload     bytea       NOT NULL
        );
        CREATE INDEX dead_letter_received ON dead_letter (received_at);
        """
    )
    create_timeseries_tables(op, timescale)


def downgrade() -> None:
    drop_timeseries_tables(op)
    op.execute(
        "DROP TABLE IF EXISTS dead_letter, command_ack, device_event, device_status,"
        " telemetry_latest, ingest_message, device"
    )
