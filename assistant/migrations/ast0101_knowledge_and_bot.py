"""assistant: the knowledge base (articles searched by relevance) and the customer-facing
web chat bot (its settings, one session per chat conversation, a per-visitor rate log);
the message log takes the bot's turns too (no user; the conversation instead).

Revision ID: ast0101
Revises: ast0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "ast0101"
down_revision = "ast0002"
branch_labels = None
depends_on = ("eng0001",)  # engage_conversations


def upgrade() -> None:
    op.execute(
        """
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE FUNCTION assistant_tags_text(text[]) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_to_string($1, ' ') $$;

        CREATE TABLE assistant_articles (
            id           bigserial PRIMARY KEY,
            kind         text NOT NULL DEFAULT 'howto' CHECK (kind IN ('howto', 'manual', 'faq')),
            title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
            body         text NOT NULL CHECK (length(body) BETWEEN 1 AND 100000),
            tags         text[] NOT NULL DEFAULT '{}',
            -- NULL: every user; else the users who may see the territory (as CRM records)
            territory_id bigint REFERENCES territories (id) ON DELETE SET NULL,
            -- public: the customer bot may quote it to website visitors
            audience     text NOT NULL DEFAULT 'internal' CHECK (audience IN ('internal', 'public')),
            created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
            updated_by   bigint REFERENCES users (id) ON DELETE SET NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            search       tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english', title), 'A')
                || setweight(to_tsvector('english', assistant_tags_text(tags)), 'B')
                || setweight(to_tsvector('english', body), 'C')
            ) STORED
        );
        CREATE INDEX assistant_articles_search ON assistant_articles USING gin (search);
        CREATE INDEX assistant_articles_title_trgm ON assistant_articles
            USING gin (lower(title) gin_trgm_ops);
        CREATE INDEX assistant_articles_updated ON assistant_articles (updated_at DESC, id DESC);

        CREATE TABLE assistant_bot_settings (
            id               integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            enabled          boolean NOT NULL DEFAULT false,
            lead_owner_id    bigint REFERENCES users (id) ON DELETE SET NULL,
            booking_user_ids bigint[] NOT NULL DEFAULT '{}',
            meeting_minutes  integer NOT NULL DEFAULT 30 CHECK (meeting_minutes BETWEEN 10 AND 240),
            window_days      integer NOT NULL DEFAULT 14 CHECK (window_days BETWEEN 1 AND 90),
            handoff_user_id  bigint REFERENCES users (id) ON DELETE SET NULL,
            min_score        real NOT NULL DEFAULT 0.45 CHECK (min_score BETWEEN 0 AND 1),
            updated_by       bigint REFERENCES users (id) ON DELETE SET NULL,
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO assistant_bot_settings (id) VALUES (1);

        CREATE TABLE assistant_bot_sessions (
            conversation_id bigint PRIMARY KEY
                            REFERENCES engage_conversations (id) ON DELETE CASCADE,
            visitor         text NOT NULL,
            stage           text NOT NULL DEFAULT 'idle',
            answers         jsonb NOT NULL DEFAULT '{}'::jsonb,
            offered         jsonb NOT NULL DEFAULT '[]'::jsonb,
            lead_id         bigint REFERENCES leads (id) ON DELETE SET NULL,
            meeting_id      bigint REFERENCES activities (id) ON DELETE SET NULL,
            visitor_turns   integer NOT NULL DEFAULT 0,
            bot_replies     integer NOT NULL DEFAULT 0,
            misses          integer NOT NULL DEFAULT 0,
            handoff_reason  text CHECK (handoff_reason IN
                                ('asked', 'low_confidence', 'negative', 'limit')),
            handed_over_at  timestamptz,
            started_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX assistant_bot_sessions_started ON assistant_bot_sessions (started_at);

        CREATE TABLE assistant_bot_rates (
            key text NOT NULL,
            at  timestamptz NOT NULL
        );
        CREATE INDEX assistant_bot_rates_key ON assistant_bot_rates (key, at);

        ALTER TABLE assistant_messages ALTER COLUMN user_id DROP NOT NULL;
        ALTER TABLE assistant_messages DROP CONSTRAINT assistant_messages_channel_check;
        ALTER TABLE assistant_messages ADD CONSTRAINT assistant_messages_channel_check
            CHECK (channel IN ('text', 'voice', 'web_chat'));
        ALTER TABLE assistant_messages ADD COLUMN conversation_id bigint;
        ALTER TABLE assistant_messages ADD CONSTRAINT assistant_messages_who
            CHECK (user_id IS NOT NULL OR conversation_id IS NOT NULL);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM assistant_messages WHERE user_id IS NULL;
        ALTER TABLE assistant_messages DROP CONSTRAINT assistant_messages_who;
        ALTER TABLE assistant_messages DROP COLUMN conversation_id;
        ALTER TABLE assistant_messages DROP CONSTRAINT assistant_messages_channel_check;
        ALTER TABLE assistant_messages ADD CONSTRAINT assistant_messages_channel_check
            CHECK (channel IN ('text', 'voice'));
        ALTER TABLE assistant_messages ALTER COLUMN user_id SET NOT NULL;
        DROP TABLE assistant_bot_rates;
        DROP TABLE assistant_bot_sessions;
        DROP TABLE assistant_bot_settings;
        DROP TABLE assistant_articles;
        DROP FUNCTION assistant_tags_text(text[]);
        """
    )
