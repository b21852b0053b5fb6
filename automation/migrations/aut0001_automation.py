"""automation: workflow definitions and their versions, the change outbox the CRM's tables
write in the same transaction, runs with their step journal and history, the per-record
activity log, the default message outbox, and the slots that make schedules and SLA events
fire once.

Capture: a row trigger on the CRM tables (and on alerts, geofence events and visits)
writes one `automation_changes` row per change, in the transaction of the change, when
some active workflow watches that object (`automation_watch`, kept by the definitions'
service). A statement trigger on the outbox queues the matcher job (the kernel's `jobs`
table, the same row `kernel.jobs.enqueue` would write) and NOTIFYs the workers. The
transaction setting `fieldmesh.automation_run` (set by the engine in its step
transactions) marks a change made by a run, which the matcher uses to stop loops.

Revision ID: aut0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "aut0001"
down_revision = None
branch_labels = ("automation",)
# crm tables and users, the jobs table, alerts, geofence events and visits
depends_on = ("c0002", "jb0001", "tm002", "g0001", "ntf0001")

CRM_TABLES = ("accounts", "contacts", "leads", "opportunities", "activities", "work_orders")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE automation_workflows (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            kind             text NOT NULL DEFAULT 'workflow' CHECK (kind IN ('workflow', 'sequence')),
            owner_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            active           boolean NOT NULL DEFAULT true,
            version          integer NOT NULL DEFAULT 1,
            trigger_on       text NOT NULL,
            inbound_secret   text,
            dropped_triggers bigint NOT NULL DEFAULT 0,
            last_error       text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX automation_workflows_trigger ON automation_workflows (trigger_on) WHERE active;

        CREATE TABLE automation_versions (
            workflow_id bigint NOT NULL REFERENCES automation_workflows (id) ON DELETE CASCADE,
            version     integer NOT NULL,
            definition  jsonb NOT NULL,
            created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (workflow_id, version)
        );

        -- Objects some active workflow listens to (trigger, waits, exits): the capture
        -- trigger writes changes of these only.
        CREATE TABLE automation_watch (object text PRIMARY KEY);

        CREATE TABLE automation_changes (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event         text NOT NULL,
            record_object text,
            record_id     text,
            old           jsonb,
            new           jsonb,
            actor_id      bigint,
            origin_run_id bigint,
            at            timestamptz NOT NULL DEFAULT clock_timestamp()
        );

        CREATE TABLE automation_runs (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workflow_id   bigint NOT NULL REFERENCES automation_workflows (id) ON DELETE CASCADE,
            version       integer NOT NULL,
            status        text NOT NULL DEFAULT 'ready' CHECK (status IN (
                'ready', 'waiting', 'completed', 'failed', 'stopped', 'exited')),
            record_object text,
            record_id     text,
            trigger       jsonb NOT NULL DEFAULT '{}',
            depth         integer NOT NULL DEFAULT 0,
            chain         bigint[] NOT NULL DEFAULT '{}',
            parent_run_id bigint REFERENCES automation_runs (id) ON DELETE SET NULL,
            wake_at       timestamptz,
            wait_event    text,
            exit_on       text[] NOT NULL DEFAULT '{}',
            exit_reason   text,
            error         text,
            change_at     timestamptz,
            created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished_at   timestamptz
        );
        CREATE INDEX automation_runs_workflow ON automation_runs (workflow_id, id DESC);
        CREATE INDEX automation_runs_recent ON automation_runs (workflow_id, created_at);
        CREATE INDEX automation_runs_record ON automation_runs (record_object, record_id)
            WHERE status IN ('ready', 'waiting');
        CREATE INDEX automation_runs_wake ON automation_runs (wake_at) WHERE status = 'waiting';

        -- The step journal: one row per step a run reached, in execution order (seq).
        CREATE TABLE automation_steps (
            run_id          bigint NOT NULL REFERENCES automation_runs (id) ON DELETE CASCADE,
            seq             integer NOT NULL,
            step_id         text NOT NULL,
            action          text NOT NULL,
            status          text NOT NULL CHECK (status IN ('started', 'done', 'waiting', 'failed')),
            input           jsonb,
            output          jsonb,
            error           text,
            idempotency_key text NOT NULL,
            wake_at         timestamptz,
            wait_event      text,
            started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished_at     timestamptz,
            PRIMARY KEY (run_id, seq)
        );

        -- A run's history besides its steps: trigger, retries, errors, stop and exit.
        CREATE TABLE automation_run_events (
            id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id  bigint NOT NULL REFERENCES automation_runs (id) ON DELETE CASCADE,
            kind    text NOT NULL,
            step_id text,
            message text NOT NULL DEFAULT '',
            at      timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX automation_run_events_run ON automation_run_events (run_id, id);

        -- What automation did to a record.
        CREATE TABLE automation_record_log (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            record_object text NOT NULL,
            record_id     text NOT NULL,
            run_id        bigint NOT NULL REFERENCES automation_runs (id) ON DELETE CASCADE,
            workflow_id   bigint NOT NULL,
            step_id       text NOT NULL,
            action        text NOT NULL,
            summary       text NOT NULL,
            at            timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX automation_record_log_record ON automation_record_log (record_object, record_id, id);

        -- The built-in channel's outbox (e-mail and SMS), until engage delivers them.
        CREATE TABLE automation_messages (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            idempotency_key text NOT NULL UNIQUE,
            channel         text NOT NULL CHECK (channel IN ('email', 'sms')),
            to_object       text,
            to_id           text,
            to_address      text,
            subject         text NOT NULL DEFAULT '',
            body            text NOT NULL DEFAULT '',
            run_id          bigint REFERENCES automation_runs (id) ON DELETE SET NULL,
            status          text NOT NULL DEFAULT 'queued',
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
        );

        CREATE TABLE automation_cursors (
            workflow_id  bigint NOT NULL REFERENCES automation_workflows (id) ON DELETE CASCADE,
            step_id      text NOT NULL,
            last_user_id bigint,
            PRIMARY KEY (workflow_id, step_id)
        );
        -- a schedule fires once per slot; an SLA event once per work order, kind and due time
        CREATE TABLE automation_schedule_slots (
            workflow_id bigint NOT NULL REFERENCES automation_workflows (id) ON DELETE CASCADE,
            slot        timestamptz NOT NULL,
            PRIMARY KEY (workflow_id, slot)
        );
        CREATE TABLE automation_sla_events (
            work_order_id bigint NOT NULL,
            kind          text NOT NULL,
            due_at        timestamptz NOT NULL,
            PRIMARY KEY (work_order_id, kind, due_at)
        );

        CREATE FUNCTION automation_capture() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            origin bigint := nullif(current_setting('fieldmesh.automation_run', true), '')::bigint;
            actor  bigint := nullif(current_setting('fieldmesh.actor_id', true), '')::bigint;
            obj    text := TG_TABLE_NAME;
            o      jsonb;
            n      jsonb;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = obj) THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO automation_changes (event, record_object, record_id, new, actor_id, origin_run_id)
                VALUES (obj || '.created', obj, NEW.id::text, to_jsonb(NEW), actor, origin);
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO automation_changes (event, record_object, record_id, old, actor_id, origin_run_id)
                VALUES (obj || '.deleted', obj, OLD.id::text, to_jsonb(OLD), actor, origin);
            ELSE
                o := to_jsonb(OLD);
                n := to_jsonb(NEW);
                IF o - 'updated_at' - 'version' IS DISTINCT FROM n - 'updated_at' - 'version' THEN
                    INSERT INTO automation_changes (event, record_object, record_id, old, new, actor_id, origin_run_id)
                    VALUES (obj || '.updated', obj, NEW.id::text, o, n, actor, origin);
                END IF;
            END IF;
            RETURN NULL;
        END $$;

        -- alerts: raised, escalated (severity up), acknowledged, cleared
        CREATE FUNCTION automation_capture_alert() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ev text;
            rank_old int;
            rank_new int;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'alert') THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                ev := 'alert.raised';
            ELSE
                rank_old := array_position(ARRAY['info', 'warning', 'critical'], OLD.severity);
                rank_new := array_position(ARRAY['info', 'warning', 'critical'], NEW.severity);
                IF rank_new > rank_old AND NEW.state <> 'cleared' THEN
                    ev := 'alert.escalated';
                ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
                    ev := 'alert.' || NEW.state;
                ELSE
                    RETURN NULL;
                END IF;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, old, new)
            VALUES (ev, 'alerts', NEW.alert_id,
                    CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END, to_jsonb(NEW));
            RETURN NULL;
        END $$;

        CREATE FUNCTION automation_capture_geo() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'geofence') THEN
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new)
            VALUES ('geofence.' || NEW.kind, CASE WHEN NEW.account_id IS NOT NULL THEN 'accounts' END,
                    NEW.account_id::text, to_jsonb(NEW));
            RETURN NULL;
        END $$;

        CREATE FUNCTION automation_capture_visit() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ev text;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM automation_watch w WHERE w.object = 'visit') THEN
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                ev := 'visit.started';
            ELSIF NEW.status = 'completed' AND OLD.status <> 'completed' THEN
                ev := 'visit.completed';
            ELSE
                RETURN NULL;
            END IF;
            INSERT INTO automation_changes (event, record_object, record_id, new)
            VALUES (ev, 'accounts', NEW.account_id::text, to_jsonb(NEW));
            RETURN NULL;
        END $$;

        -- A queued matcher job already visible is enough (a plain read: concurrent writers
        -- never wait on one another); otherwise queue one. A change that commits just as
        -- the queued job starts and finishes its last batch is picked up by the periodic
        -- matcher (automation.jobs), so no change waits more than a second or two.
        CREATE FUNCTION automation_wake_matcher() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM jobs WHERE dedupe_key = 'automation.match'
                           AND status = 'queued') THEN
                INSERT INTO jobs (task, args, run_after, dedupe_key, max_attempts)
                VALUES ('automation.match', '{}', now(), 'automation.match', 5)
                ON CONFLICT (dedupe_key) WHERE status = 'queued' AND dedupe_key IS NOT NULL
                DO NOTHING;
            END IF;
            PERFORM pg_notify('fieldmesh_jobs', 'automation.match');
            RETURN NULL;
        END $$;
        CREATE TRIGGER automation_changes_wake AFTER INSERT ON automation_changes
            FOR EACH STATEMENT EXECUTE FUNCTION automation_wake_matcher();

        CREATE TRIGGER alerts_automation AFTER INSERT OR UPDATE ON alerts
            FOR EACH ROW EXECUTE FUNCTION automation_capture_alert();
        CREATE TRIGGER geo_events_automation AFTER INSERT ON geo_events
            FOR EACH ROW EXECUTE FUNCTION automation_capture_geo();
        CREATE TRIGGER visits_automation AFTER INSERT OR UPDATE OF status ON visits
            FOR EACH ROW EXECUTE FUNCTION automation_capture_visit();
        """
    )
    for table in CRM_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_automation AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION automation_capture()"
        )


def downgrade() -> None:
    for table in CRM_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_automation ON {table}")
    op.execute(
        """
        DROP TRIGGER IF EXISTS alerts_automation ON alerts;
        DROP TRIGGER IF EXISTS geo_events_automation ON geo_events;
        DROP TRIGGER IF EXISTS visits_automation ON visits;
        DROP TABLE IF EXISTS automation_sla_events, automation_schedule_slots, automation_cursors,
            automation_messages, automation_record_log, automation_run_events, automation_steps,
            automation_runs, automation_changes, automation_watch, automation_versions,
            automation_workflows CASCADE;
        DROP FUNCTION IF EXISTS automation_capture, automation_capture_alert, automation_capture_geo,
            automation_capture_visit, automation_wake_matcher;
        """
    )
