"""crm: users, tokens, territories, accounts, contacts, leads, pipelines, opportunities,
activities, work orders, audit log, idempotency keys, import/export jobs.

Column names here are a contract other packages read (routing, geo, insights, crm_sync):
change them only with a new revision.

Revision ID: c0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "c0001"
down_revision = None
branch_labels = ("crm",)
depends_on = ("t0001",)  # enables PostGIS


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE territories (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
            region     text,
            geom       geography(MultiPolygon, 4326),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX territories_geom ON territories USING gist (geom);

        CREATE TABLE users (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email            text NOT NULL CHECK (email LIKE '%_@_%'),
            name             text NOT NULL,
            role             text NOT NULL CHECK (role IN ('admin', 'manager', 'rep', 'viewer')),
            manager_id       bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id     bigint REFERENCES territories (id) ON DELETE SET NULL,
            password_hash    text,
            skills           text[] NOT NULL DEFAULT '{}',
            home_location    geography(Point, 4326),
            shift_start      time NOT NULL DEFAULT '08:00',
            shift_end        time NOT NULL DEFAULT '17:00',
            timezone         text NOT NULL DEFAULT 'UTC',
            active           boolean NOT NULL DEFAULT true,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX users_email ON users (lower(email));
        CREATE INDEX users_manager ON users (manager_id);
        CREATE INDEX users_territory ON users (territory_id);

        -- Tokens are 256-bit random secrets: a SHA-256 of the token is enough to look
        -- them up without storing them (a slow KDF is for low-entropy passwords).
        CREATE TABLE api_tokens (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            name         text NOT NULL DEFAULT '',
            token_hash   bytea NOT NULL UNIQUE,
            prefix       text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz,
            last_used_at timestamptz,
            revoked_at   timestamptz
        );
        CREATE INDEX api_tokens_user ON api_tokens (user_id);

        -- Default visit cadence per account type (routing reads accounts.visit_frequency_days).
        CREATE TABLE account_type_defaults (
            type                 text PRIMARY KEY
                                 CHECK (type IN ('customer', 'prospect', 'partner', 'competitor')),
            visit_frequency_days integer CHECK (visit_frequency_days > 0)
        );
        INSERT INTO account_type_defaults VALUES
            ('customer', 30), ('prospect', 60), ('partner', 90), ('competitor', NULL);

        CREATE TABLE accounts (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
            type                 text NOT NULL DEFAULT 'prospect'
                                 REFERENCES account_type_defaults (type),
            parent_id            bigint REFERENCES accounts (id) ON DELETE SET NULL,
            annual_revenue       numeric(18, 2),
            currency             char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
            address              text,
            location             geography(Point, 4326),
            territory_id         bigint REFERENCES territories (id) ON DELETE SET NULL,
            owner_id             bigint REFERENCES users (id) ON DELETE SET NULL,
            health_score         smallint CHECK (health_score BETWEEN 0 AND 100),
            visit_frequency_days integer CHECK (visit_frequency_days > 0),
            last_visit_at        timestamptz,
            external_id          text UNIQUE,
            custom               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom) = 'object'),
            created_at           timestamptz NOT NULL DEFAULT now(),
            updated_at           timestamptz NOT NULL DEFAULT now(),
            version              integer NOT NULL DEFAULT 1,
            CHECK (parent_id IS DISTINCT FROM id)
        );
        CREATE INDEX accounts_parent ON accounts (parent_id);
        CREATE INDEX accounts_territory ON accounts (territory_id, id);
        CREATE INDEX accounts_owner ON accounts (owner_id, id);
        CREATE INDEX accounts_location ON accounts USING gist (location);
        CREATE INDEX accounts_name ON accounts (lower(name));

        CREATE FUNCTION crm_account_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.visit_frequency_days IS NULL THEN
                SELECT d.visit_frequency_days INTO NEW.visit_frequency_days
                FROM account_type_defaults d WHERE d.type = NEW.type;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER accounts_defaults BEFORE INSERT ON accounts
            FOR EACH ROW EXECUTE FUNCTION crm_account_defaults();

        -- The hierarchy is a tree: a parent that is the account itself or one of its
        -- descendants is refused (SQLSTATE 23514, check_violation).
        CREATE FUNCTION crm_account_no_cycle() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.parent_id IS NOT NULL AND EXISTS (
                WITH RECURSIVE up(id, parent_id) AS (
                    SELECT a.id, a.parent_id FROM accounts a WHERE a.id = NEW.parent_id
                    UNION
                    SELECT a.id, a.parent_id FROM accounts a JOIN up ON a.id = up.parent_id
                )
                SELECT 1 FROM up WHERE up.id = NEW.id
            ) THEN
                RAISE EXCEPTION 'account % cannot have parent %: that would make a cycle',
                    NEW.id, NEW.parent_id
                    USING ERRCODE = 'check_violation', COLUMN = 'parent_id';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER accounts_no_cycle BEFORE UPDATE OF parent_id ON accounts
            FOR EACH ROW EXECUTE FUNCTION crm_account_no_cycle();

        CREATE TABLE contacts (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind             text NOT NULL DEFAULT 'individual'
                             CHECK (kind IN ('individual', 'company')),
            first_name       text,
            last_name        text,
            company_name     text,
            title            text,
            email            text,
            email_normalized text GENERATED ALWAYS AS (lower(btrim(email))) STORED,
            phone            text,
            phone_normalized text,
            comm_prefs       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(comm_prefs) = 'object'),
            address          text,
            owner_id         bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id     bigint REFERENCES territories (id) ON DELETE SET NULL,
            merged_into_id   bigint REFERENCES contacts (id) ON DELETE SET NULL,
            external_id      text UNIQUE,
            custom           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom) = 'object'),
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            version          integer NOT NULL DEFAULT 1,
            CHECK (coalesce(first_name, last_name, company_name) IS NOT NULL)
        );
        CREATE INDEX contacts_email ON contacts (email_normalized);
        CREATE INDEX contacts_phone ON contacts (phone_normalized);
        CREATE INDEX contacts_territory ON contacts (territory_id, id);
        CREATE INDEX contacts_owner ON contacts (owner_id, id);
        CREATE INDEX contacts_last_name ON contacts (last_name, id);

        CREATE TABLE account_contacts (
            account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            contact_id bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
            role       text NOT NULL DEFAULT 'secondary'
                       CHECK (role IN ('primary', 'secondary', 'decision_maker')),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account_id, contact_id)
        );
        CREATE INDEX account_contacts_contact ON account_contacts (contact_id);
        CREATE UNIQUE INDEX account_contacts_one_primary ON account_contacts (account_id)
            WHERE role = 'primary';

        CREATE TABLE leads (
            id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            first_name               text,
            last_name                text,
            company                  text,
            title                    text,
            email                    text,
            phone                    text,
            phone_normalized         text,
            source                   text NOT NULL DEFAULT 'other' CHECK (source IN (
                'website', 'referral', 'cold_call', 'social_media', 'event', 'partner', 'other')),
            status                   text NOT NULL DEFAULT 'new' CHECK (status IN (
                'new', 'contacted', 'qualified', 'unqualified', 'converted')),
            region                   text,
            address                  text,
            location                 geography(Point, 4326),
            estimated_amount         numeric(18, 2),
            currency                 char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
            owner_id                 bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id             bigint REFERENCES territories (id) ON DELETE SET NULL,
            assignment_rule_id       bigint,
            converted_at             timestamptz,
            converted_account_id     bigint REFERENCES accounts (id) ON DELETE SET NULL,
            converted_contact_id     bigint REFERENCES contacts (id) ON DELETE SET NULL,
            converted_opportunity_id bigint,
            conversion_mapping       jsonb,
            external_id              text UNIQUE,
            custom                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom) = 'object'),
            created_at               timestamptz NOT NULL DEFAULT now(),
            updated_at               timestamptz NOT NULL DEFAULT now(),
            version                  integer NOT NULL DEFAULT 1,
            CHECK (coalesce(first_name, last_name, company) IS NOT NULL)
        );
        CREATE INDEX leads_territory ON leads (territory_id, id);
        CREATE INDEX leads_owner ON leads (owner_id, id);
        CREATE INDEX leads_email ON leads (lower(email));

        -- Evaluated on lead creation in ascending priority; the first matching active rule
        -- assigns. round_robin cycles through assignee_ids, or (when empty) the active reps
        -- of the lead's territory; rr_cursor remembers who was last.
        CREATE TABLE lead_assignment_rules (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name           text NOT NULL,
            priority       integer NOT NULL DEFAULT 100,
            active         boolean NOT NULL DEFAULT true,
            match_source   text CHECK (match_source IN (
                'website', 'referral', 'cold_call', 'social_media', 'event', 'partner', 'other')),
            match_region   text,
            match_territory_id bigint REFERENCES territories (id) ON DELETE CASCADE,
            strategy       text NOT NULL DEFAULT 'round_robin'
                           CHECK (strategy IN ('round_robin', 'fixed')),
            assignee_ids   bigint[] NOT NULL DEFAULT '{}',
            set_territory_id bigint REFERENCES territories (id) ON DELETE SET NULL,
            rr_cursor      bigint,
            created_at     timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE leads ADD FOREIGN KEY (assignment_rule_id)
            REFERENCES lead_assignment_rules (id) ON DELETE SET NULL;

        CREATE TABLE pipelines (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name       text NOT NULL UNIQUE,
            is_default boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX pipelines_one_default ON pipelines (is_default) WHERE is_default;

        CREATE TABLE pipeline_stages (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            pipeline_id bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
            name        text NOT NULL,
            position    integer NOT NULL,
            probability numeric(5, 2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
            is_won      boolean NOT NULL DEFAULT false,
            is_lost     boolean NOT NULL DEFAULT false,
            CHECK (NOT (is_won AND is_lost)),
            UNIQUE (pipeline_id, name),
            UNIQUE (pipeline_id, position) DEFERRABLE INITIALLY DEFERRED
        );

        INSERT INTO pipelines (name, is_default) VALUES ('Sales', true);
        INSERT INTO pipeline_stages (pipeline_id, name, position, probability, is_won, is_lost)
        SELECT p.id, s.name, s.position, s.probability, s.is_won, s.is_lost
        FROM pipelines p, (VALUES
            ('Qualification', 1, 10, false, false),
            ('Needs analysis', 2, 25, false, false),
            ('Proposal', 3, 50, false, false),
            ('Negotiation', 4, 75, false, false),
            ('Closed won', 5, 100, true, false),
            ('Closed lost', 6, 0, false, true)
        ) AS s(name, position, probability, is_won, is_lost);

        CREATE TABLE opportunities (
            id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
            account_id         bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            contact_id         bigint REFERENCES contacts (id) ON DELETE SET NULL,
            pipeline_id        bigint NOT NULL REFERENCES pipelines (id),
            stage_id           bigint NOT NULL REFERENCES pipeline_stages (id),
            amount             numeric(18, 2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
            currency           char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
            close_date         date,
            probability        numeric(5, 2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
            probability_is_override boolean NOT NULL DEFAULT false,
            status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
            competitors        text[] NOT NULL DEFAULT '{}',
            owner_id           bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id       bigint REFERENCES territories (id) ON DELETE SET NULL,
            lead_id            bigint REFERENCES leads (id) ON DELETE SET NULL,
            closed_at          timestamptz,
            custom             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom) = 'object'),
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now(),
            version            integer NOT NULL DEFAULT 1
        );
        CREATE INDEX opportunities_account ON opportunities (account_id);
        CREATE INDEX opportunities_territory ON opportunities (territory_id, id);
        CREATE INDEX opportunities_owner ON opportunities (owner_id, id);
        CREATE INDEX opportunities_stage ON opportunities (stage_id);
        CREATE INDEX opportunities_close ON opportunities (close_date);
        ALTER TABLE leads ADD FOREIGN KEY (converted_opportunity_id)
            REFERENCES opportunities (id) ON DELETE SET NULL;

        CREATE TABLE opportunity_stage_history (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            opportunity_id bigint NOT NULL REFERENCES opportunities (id) ON DELETE CASCADE,
            from_stage_id  bigint REFERENCES pipeline_stages (id) ON DELETE SET NULL,
            to_stage_id    bigint NOT NULL REFERENCES pipeline_stages (id) ON DELETE CASCADE,
            amount         numeric(18, 2),
            changed_by     bigint REFERENCES users (id) ON DELETE SET NULL,
            changed_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX opportunity_stage_history_opp ON opportunity_stage_history (opportunity_id, changed_at);
        CREATE INDEX opportunity_stage_history_at ON opportunity_stage_history (changed_at);

        CREATE TABLE work_orders (
            id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account_id             bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            title                  text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
            description            text,
            priority               text NOT NULL DEFAULT 'normal'
                                   CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
            status                 text NOT NULL DEFAULT 'new' CHECK (status IN (
                'new', 'assigned', 'scheduled', 'in_progress', 'done', 'cancelled')),
            sla_due_at             timestamptz,
            required_skills        text[] NOT NULL DEFAULT '{}',
            estimated_duration_min integer NOT NULL DEFAULT 60 CHECK (estimated_duration_min > 0),
            earliest_start         timestamptz,
            latest_end             timestamptz,
            -- Extra windows: [{"start": ISO-8601, "end": ISO-8601}, ...]; earliest_start /
            -- latest_end bound them all.
            time_windows           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(time_windows) = 'array'),
            assignee_id            bigint REFERENCES users (id) ON DELETE SET NULL,
            scheduled_start        timestamptz,
            scheduled_end          timestamptz,
            source                 text NOT NULL DEFAULT 'manual',
            source_ref             text,
            owner_id               bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id           bigint REFERENCES territories (id) ON DELETE SET NULL,
            completed_at           timestamptz,
            custom                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom) = 'object'),
            created_at             timestamptz NOT NULL DEFAULT now(),
            updated_at             timestamptz NOT NULL DEFAULT now(),
            version                integer NOT NULL DEFAULT 1,
            CHECK (earliest_start IS NULL OR latest_end IS NULL OR earliest_start <= latest_end)
        );
        CREATE UNIQUE INDEX work_orders_source_ref ON work_orders (source, source_ref)
            WHERE source_ref IS NOT NULL;
        CREATE INDEX work_orders_account ON work_orders (account_id);
        CREATE INDEX work_orders_status ON work_orders (status) WHERE status NOT IN ('done', 'cancelled');
        CREATE INDEX work_orders_assignee ON work_orders (assignee_id, id);
        CREATE INDEX work_orders_territory ON work_orders (territory_id, id);

        -- The status life cycle, enforced for every writer (the API, routing, crm_sync).
        CREATE TABLE work_order_transitions (
            from_status text NOT NULL,
            to_status   text NOT NULL,
            PRIMARY KEY (from_status, to_status)
        );
        INSERT INTO work_order_transitions VALUES
            ('new', 'assigned'), ('new', 'scheduled'), ('new', 'cancelled'),
            ('assigned', 'new'), ('assigned', 'scheduled'), ('assigned', 'in_progress'),
            ('assigned', 'cancelled'),
            ('scheduled', 'assigned'), ('scheduled', 'in_progress'), ('scheduled', 'new'),
            ('scheduled', 'cancelled'),
            ('in_progress', 'done'), ('in_progress', 'cancelled'), ('in_progress', 'scheduled');
        CREATE FUNCTION crm_work_order_transition() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                IF NOT EXISTS (SELECT 1 FROM work_order_transitions t
                               WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
                    RAISE EXCEPTION 'work order % cannot go from % to %', OLD.id, OLD.status, NEW.status
                        USING ERRCODE = 'check_violation', COLUMN = 'status';
                END IF;
                IF NEW.status = 'done' AND NEW.completed_at IS NULL THEN
                    NEW.completed_at := now();
                END IF;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER work_orders_transition BEFORE UPDATE OF status ON work_orders
            FOR EACH ROW EXECUTE FUNCTION crm_work_order_transition();

        CREATE TABLE activities (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            type           text NOT NULL CHECK (type IN ('call', 'email', 'meeting', 'task', 'note')),
            subject        text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
            body           text,
            status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
            due_at         timestamptz,
            start_at       timestamptz,
            end_at         timestamptz,
            tz             text NOT NULL DEFAULT 'UTC',
            account_id     bigint REFERENCES accounts (id) ON DELETE CASCADE,
            contact_id     bigint REFERENCES contacts (id) ON DELETE SET NULL,
            lead_id        bigint REFERENCES leads (id) ON DELETE SET NULL,
            opportunity_id bigint REFERENCES opportunities (id) ON DELETE SET NULL,
            work_order_id  bigint REFERENCES work_orders (id) ON DELETE SET NULL,
            owner_id       bigint REFERENCES users (id) ON DELETE SET NULL,
            territory_id   bigint REFERENCES territories (id) ON DELETE SET NULL,
            source         text NOT NULL DEFAULT 'manual',
            source_ref     text,
            completed_at   timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            updated_at     timestamptz NOT NULL DEFAULT now(),
            version        integer NOT NULL DEFAULT 1,
            -- The time the timeline sorts by (newest first).
            occurred_at    timestamptz GENERATED ALWAYS AS (coalesce(start_at, due_at, created_at)) STORED,
            CHECK (end_at IS NULL OR start_at IS NULL OR start_at <= end_at)
        );
        CREATE INDEX activities_timeline ON activities (account_id, occurred_at DESC, id DESC);
        CREATE INDEX activities_contact ON activities (contact_id) WHERE contact_id IS NOT NULL;
        CREATE INDEX activities_lead ON activities (lead_id) WHERE lead_id IS NOT NULL;
        CREATE INDEX activities_opportunity ON activities (opportunity_id) WHERE opportunity_id IS NOT NULL;
        CREATE INDEX activities_work_order ON activities (work_order_id) WHERE work_order_id IS NOT NULL;
        CREATE INDEX activities_owner ON activities (owner_id, id);
        CREATE UNIQUE INDEX activities_source_ref ON activities (source, source_ref)
            WHERE source_ref IS NOT NULL;

        -- One row per changed field (update), or one row with the whole record (insert,
        -- delete). actor_id comes from the transaction setting fieldmesh.actor_id.
        -- ledger_receipt lets the ledger point an entry at its anchoring receipt.
        CREATE TABLE audit_log (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name     text NOT NULL,
            record_id      bigint NOT NULL,
            action         text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
            field          text,
            old_value      jsonb,
            new_value      jsonb,
            actor_id       bigint,
            at             timestamptz NOT NULL DEFAULT now(),
            ledger_receipt jsonb
        );
        CREATE INDEX audit_log_record ON audit_log (table_name, record_id, id);
        CREATE INDEX audit_log_at ON audit_log (at);

        CREATE FUNCTION crm_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            actor bigint := nullif(current_setting('fieldmesh.actor_id', true), '')::bigint;
            o jsonb;
            n jsonb;
            k text;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO audit_log (table_name, record_id, action, new_value, actor_id)
                VALUES (TG_TABLE_NAME, NEW.id, 'insert', to_jsonb(NEW) - 'password_hash', actor);
                RETURN NEW;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO audit_log (table_name, record_id, action, old_value, actor_id)
                VALUES (TG_TABLE_NAME, OLD.id, 'delete', to_jsonb(OLD) - 'password_hash', actor);
                RETURN OLD;
            END IF;
            o := to_jsonb(OLD);
            n := to_jsonb(NEW);
            FOR k IN SELECT jsonb_object_keys(n) LOOP
                CONTINUE WHEN k IN ('updated_at', 'version', 'occurred_at', 'email_normalized');
                IF k = 'password_hash' THEN
                    IF o -> k IS DISTINCT FROM n -> k THEN
                        INSERT INTO audit_log (table_name, record_id, action, field, actor_id)
                        VALUES (TG_TABLE_NAME, NEW.id, 'update', k, actor);
                    END IF;
                    CONTINUE;
                END IF;
                IF o -> k IS DISTINCT FROM n -> k THEN
                    INSERT INTO audit_log (table_name, record_id, action, field, old_value, new_value, actor_id)
                    VALUES (TG_TABLE_NAME, NEW.id, 'update', k, o -> k, n -> k, actor);
                END IF;
            END LOOP;
            RETURN NEW;
        END $$;
        """
    )
    for table in (
        "accounts",
        "contacts",
        "leads",
        "opportunities",
        "activities",
        "work_orders",
        "pipelines",
        "pipeline_stages",
        "users",
        "territories",
    ):
        op.execute(
            f"CREATE TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION crm_audit()"
        )
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            key          text NOT NULL,
            method       text NOT NULL,
            path         text NOT NULL,
            request_hash text NOT NULL,
            status       integer,
            response     jsonb,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

        CREATE TABLE import_jobs (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            entity         text NOT NULL CHECK (entity IN ('accounts', 'contacts', 'leads')),
            key_field      text,
            filename       text,
            content        bytea NOT NULL,
            status         text NOT NULL DEFAULT 'queued' CHECK (status IN (
                'queued', 'running', 'done', 'failed', 'reverting', 'reverted')),
            total_rows     integer,
            processed_rows integer NOT NULL DEFAULT 0,
            inserted_rows  integer NOT NULL DEFAULT 0,
            updated_rows   integer NOT NULL DEFAULT 0,
            failed_rows    integer NOT NULL DEFAULT 0,
            error          text,
            created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            started_at     timestamptz,
            finished_at    timestamptz,
            reverted_at    timestamptz
        );
        -- What each good row did, so the job can be reverted (delete inserted rows,
        -- restore the previous values of updated ones).
        CREATE TABLE import_job_rows (
            job_id    bigint NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
            line_no   integer NOT NULL,
            record_id bigint NOT NULL,
            action    text NOT NULL CHECK (action IN ('inserted', 'updated')),
            previous  jsonb,
            PRIMARY KEY (job_id, line_no)
        );
        CREATE TABLE import_job_errors (
            job_id  bigint NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
            line_no integer NOT NULL,
            field   text,
            message text NOT NULL,
            raw     jsonb,
            PRIMARY KEY (job_id, line_no)
        );

        CREATE TABLE export_jobs (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            entity         text NOT NULL CHECK (entity IN ('accounts', 'contacts', 'leads')),
            filter         jsonb,
            status         text NOT NULL DEFAULT 'queued'
                           CHECK (status IN ('queued', 'running', 'done', 'failed')),
            total_rows     integer,
            processed_rows integer NOT NULL DEFAULT 0,
            result         bytea,
            error          text,
            created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            finished_at    timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS export_jobs, import_job_errors, import_job_rows, import_jobs,
            idempotency_keys, audit_log, activities, work_order_transitions, work_orders,
            opportunity_stage_history, opportunities, pipeline_stages, pipelines,
            lead_assignment_rules, leads, account_contacts, contacts, accounts,
            account_type_defaults, api_tokens, users, territories CASCADE;
        DROP FUNCTION IF EXISTS crm_audit, crm_work_order_transition, crm_account_no_cycle,
            crm_account_defaults;
        """
    )
