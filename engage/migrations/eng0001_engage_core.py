"""engage: mailboxes, templates, the send outbox, consent, conversations and their messages.

- `engage_mailboxes`: a user's or a team's address, where it sends from and the IMAP
  mailbox it syncs (UIDVALIDITY, last UID seen, HIGHESTMODSEQ).
- `engage_outbox`: one row per e-mail to send. The Message-ID and the whole MIME message
  are decided when the row is written, before any attempt, so every attempt sends the same
  bytes; `state` queued -> sending -> sent | failed | refused.
- `engage_consent`: per contact, channel and purpose (the successor of contacts.comm_prefs,
  which is read as the default when no row exists).
- `engage_address_status`: addresses that bounced (hard) and why.
- `engage_conversations` / `engage_messages`: one conversation model for every channel.
- `engage_dead_letters`: mail that could not be parsed, kept whole (up to the size limit)
  with the reason.

Revision ID: eng0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "eng0001"
down_revision = None
branch_labels = ("engage",)
depends_on = ("c0001",)  # users, contacts, leads, accounts, activities


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE engage_mailboxes (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            address         text NOT NULL UNIQUE CHECK (address = lower(address) AND address LIKE '%_@_%'),
            display_name    text,
            kind            text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'team')),
            owner_user_id   bigint REFERENCES users (id) ON DELETE SET NULL,
            imap_host       text,
            imap_port       integer,
            imap_tls        boolean NOT NULL DEFAULT false,
            imap_user       text,
            imap_password   text,
            folder          text NOT NULL DEFAULT 'INBOX',
            uidvalidity     bigint,
            last_uid        bigint NOT NULL DEFAULT 0,
            highestmodseq   bigint,
            rate_per_min    integer NOT NULL DEFAULT 600 CHECK (rate_per_min > 0),
            last_sync_at    timestamptz,
            last_error      text,
            created_at      timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE engage_templates (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
            purpose     text NOT NULL DEFAULT 'transactional'
                        CHECK (purpose IN ('transactional', 'marketing', 'service')),
            subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
            html        text NOT NULL,
            text_body   text,
            sms_body    text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE engage_conversations (
            id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            contact_id          bigint REFERENCES contacts (id) ON DELETE CASCADE,
            lead_id             bigint REFERENCES leads (id) ON DELETE CASCADE,
            account_id          bigint REFERENCES accounts (id) ON DELETE SET NULL,
            visitor_email       text,
            subject             text,
            status              text NOT NULL DEFAULT 'open'
                                CHECK (status IN ('open', 'pending', 'resolved')),
            assignee_user_id    bigint REFERENCES users (id) ON DELETE SET NULL,
            last_channel        text,
            last_message_at     timestamptz NOT NULL DEFAULT now(),
            first_response_due_at timestamptz,
            first_response_at   timestamptz,
            waiting_since       timestamptz,
            resolved_at         timestamptz,
            created_at          timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX engage_conversations_contact ON engage_conversations (contact_id, last_message_at DESC);
        CREATE INDEX engage_conversations_status ON engage_conversations (status, last_message_at DESC);
        CREATE INDEX engage_conversations_subject ON engage_conversations (contact_id, subject);
        CREATE INDEX engage_conversations_lead ON engage_conversations (lead_id) WHERE lead_id IS NOT NULL;
        CREATE INDEX engage_conversations_visitor ON engage_conversations (visitor_email, subject)
            WHERE contact_id IS NULL AND lead_id IS NULL;

        CREATE TABLE engage_outbox (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            idempotency_key text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            mailbox_id      bigint NOT NULL REFERENCES engage_mailboxes (id),
            sender_address  text NOT NULL,
            to_address      text NOT NULL,
            contact_id      bigint REFERENCES contacts (id) ON DELETE SET NULL,
            template_id     bigint REFERENCES engage_templates (id) ON DELETE SET NULL,
            conversation_id bigint REFERENCES engage_conversations (id) ON DELETE SET NULL,
            purpose         text NOT NULL DEFAULT 'transactional',
            subject         text NOT NULL,
            message_id      text NOT NULL UNIQUE,
            track_id        text NOT NULL UNIQUE,
            raw             bytea NOT NULL,
            state           text NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'refused')),
            reason          text,
            attempts        integer NOT NULL DEFAULT 0,
            locked_until    timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now(),
            sent_at         timestamptz,
            opened_at       timestamptz,
            clicked_at      timestamptz
        );
        CREATE INDEX engage_outbox_due ON engage_outbox (mailbox_id, id) WHERE state IN ('queued', 'sending');
        CREATE INDEX engage_outbox_rate ON engage_outbox (mailbox_id, sent_at) WHERE sent_at IS NOT NULL;
        CREATE INDEX engage_outbox_contact ON engage_outbox (contact_id);

        CREATE TABLE engage_consent (
            contact_id  bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
            channel     text NOT NULL CHECK (channel IN ('email', 'sms', 'chat')),
            purpose     text NOT NULL CHECK (purpose IN ('transactional', 'marketing', 'service')),
            granted     boolean NOT NULL,
            source      text NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (contact_id, channel, purpose)
        );

        CREATE TABLE engage_address_status (
            address     text PRIMARY KEY CHECK (address = lower(address)),
            status      text NOT NULL CHECK (status IN ('bounced', 'complained', 'erased')),
            reason      text NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE engage_messages (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id bigint REFERENCES engage_conversations (id) ON DELETE CASCADE,
            channel         text NOT NULL CHECK (channel IN ('email', 'sms', 'chat', 'note')),
            direction       text NOT NULL CHECK (direction IN ('in', 'out', 'note')),
            contact_id      bigint REFERENCES contacts (id) ON DELETE SET NULL,
            author_user_id  bigint REFERENCES users (id) ON DELETE SET NULL,
            from_addr       text,
            to_addr         text,
            subject         text,
            body_text       text NOT NULL DEFAULT '',
            body_full       text,
            external_id     text,
            in_reply_to     text,
            refs            text[] NOT NULL DEFAULT '{}',
            mailbox_id      bigint REFERENCES engage_mailboxes (id) ON DELETE SET NULL,
            uid             bigint,
            outbox_id       bigint REFERENCES engage_outbox (id) ON DELETE SET NULL,
            activity_id     bigint,
            kind            text NOT NULL DEFAULT 'message'
                            CHECK (kind IN ('message', 'auto_reply', 'bounce')),
            sent_at         timestamptz,  -- outbound SMS: when the gateway took it
            send_error      text,
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX engage_messages_external ON engage_messages (channel, external_id)
            WHERE external_id IS NOT NULL;
        CREATE INDEX engage_messages_conversation ON engage_messages (conversation_id, created_at);
        CREATE INDEX engage_messages_contact ON engage_messages (contact_id, created_at);

        CREATE TABLE engage_dead_letters (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            mailbox_id  bigint REFERENCES engage_mailboxes (id) ON DELETE SET NULL,
            uid         bigint,
            channel     text NOT NULL DEFAULT 'email',
            reason      text NOT NULL,
            raw         bytea NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        -- Secrets the package makes for itself (the key that signs tracking and unsubscribe links).
        CREATE TABLE engage_keys (
            name        text PRIMARY KEY,
            secret      bytea NOT NULL CHECK (length(secret) >= 32),
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE engage_events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            outbox_id   bigint REFERENCES engage_outbox (id) ON DELETE CASCADE,
            contact_id  bigint REFERENCES contacts (id) ON DELETE CASCADE,
            kind        text NOT NULL CHECK (kind IN ('open', 'click', 'unsubscribe', 'bounce', 'reply')),
            url         text,
            at          timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX engage_events_outbox ON engage_events (outbox_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS engage_keys, engage_events, engage_dead_letters, engage_messages,
            engage_address_status, engage_consent, engage_outbox, engage_conversations,
            engage_templates, engage_mailboxes;
        """
    )
