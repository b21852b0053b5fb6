"""devices: enrolment tokens, enrolments, commands, firmware images, release keys, rollouts.

Revision ID: dev0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "dev0001"
down_revision = None
branch_labels = ("devices",)
# device and command_ack (telemetry), alerts (telemetry), assets and device_scope (crm_sync)
depends_on = ("t0001", "tm002", "s0003")


def upgrade() -> None:
    op.execute(
        """
        -- A one-time enrolment token: only its SHA-256 is kept; used once, race-safe
        -- (consumed by one conditional UPDATE), and it expires.
        CREATE TABLE enrolment_token (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            token_hash      bytea       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
            device_id       text,       -- when set, only this device may use it
            account_id      bigint,     -- when set, the device is claimed onto this account
            equipment_model text,
            device_group    text,
            created_by      bigint,     -- NULL: issued with `fieldmesh devices enrol`
            created_at      timestamptz NOT NULL DEFAULT now(),
            expires_at      timestamptz NOT NULL,
            used_at         timestamptz,
            used_by_device  text,
            CHECK ((used_at IS NULL) = (used_by_device IS NULL))
        );
        CREATE TABLE device_enrolment (
            device_id         text PRIMARY KEY,
            token_id          bigint REFERENCES enrolment_token (id),
            equipment_model   text,
            device_group      text,
            firmware          text,
            state             text NOT NULL DEFAULT 'active'
                              CHECK (state IN ('active', 'decommissioned')),
            enrolled_at       timestamptz NOT NULL DEFAULT now(),
            decommissioned_at timestamptz,
            decommissioned_by bigint,
            CHECK ((state = 'decommissioned') = (decommissioned_at IS NOT NULL))
        );
        CREATE TABLE device_command (
            command_id  text PRIMARY KEY,
            device_id   text        NOT NULL,
            name        text        NOT NULL CHECK (name IN ('config', 'ping', 'reboot', 'ota')),
            args        jsonb       NOT NULL,
            state       text        NOT NULL DEFAULT 'sent'
                        CHECK (state IN ('sent', 'acked', 'failed', 'timed_out', 'cancelled')),
            detail      text        NOT NULL DEFAULT '',
            created_by  bigint,
            created_at  timestamptz NOT NULL DEFAULT now(),
            deadline_at timestamptz NOT NULL,
            finished_at timestamptz,
            rollout_id  bigint
        );
        CREATE INDEX device_command_device ON device_command (device_id, created_at DESC);
        CREATE INDEX device_command_open ON device_command (deadline_at) WHERE state = 'sent';
        CREATE INDEX command_ack_command ON command_ack (command_id);
        CREATE TABLE release_key (
            key_id     text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
            public_key bytea       NOT NULL UNIQUE CHECK (length(public_key) = 32),
            created_by bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        -- Content-addressed: the file is stored under its SHA-256.
        CREATE TABLE firmware_image (
            sha256          text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            equipment_model text        NOT NULL,
            version         text        NOT NULL,
            size_bytes      bigint      NOT NULL CHECK (size_bytes > 0),
            key_id          text        NOT NULL REFERENCES release_key (key_id),
            signature       text        NOT NULL,
            uploaded_by     bigint,
            uploaded_at     timestamptz NOT NULL DEFAULT now(),
            UNIQUE (equipment_model, version)
        );
        CREATE TABLE firmware_rollout (
            id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sha256            text        NOT NULL REFERENCES firmware_image (sha256),
            equipment_model   text        NOT NULL,
            device_group      text,
            percent           double precision NOT NULL CHECK (percent > 0 AND percent <= 100),
            wave_size         integer     NOT NULL CHECK (wave_size BETWEEN 1 AND 10000),
            failure_threshold double precision NOT NULL CHECK (failure_threshold >= 0 AND failure_threshold <= 1),
            min_results       integer     NOT NULL CHECK (min_results >= 1),
            command_timeout_s integer     NOT NULL CHECK (command_timeout_s BETWEEN 10 AND 86400),
            state             text        NOT NULL DEFAULT 'running'
                              CHECK (state IN ('running', 'halted', 'completed', 'cancelled')),
            reason            text        NOT NULL DEFAULT '',
            created_by        bigint,
            created_at        timestamptz NOT NULL DEFAULT now(),
            finished_at       timestamptz
        );
        CREATE TABLE rollout_device (
            rollout_id bigint NOT NULL REFERENCES firmware_rollout (id),
            device_id  text   NOT NULL,
            rank       text   NOT NULL,  -- a stable hash: the first N percent get the image
            state      text   NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'sent', 'succeeded', 'failed', 'skipped')),
            command_id text REFERENCES device_command (command_id),
            PRIMARY KEY (rollout_id, device_id)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS rollout_device, firmware_rollout, firmware_image, release_key,"
        " device_command, device_enrolment, enrolment_token;"
        " DROP INDEX IF EXISTS command_ack_command"
    )
