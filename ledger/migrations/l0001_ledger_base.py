"""ledger: entries, sealed batches (checkpoints of one append-only log), receipts, registries.

Revision ID: l0001
Depends on: t0001 (device, device_event)
"""

from __future__ import annotations

from alembic import op

revision = "l0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = ("t0001",)


def upgrade() -> None:
    op.execute(
        """
        -- Everything handed to the ledger. leaf_index is NULL until the sealer puts the
        -- entry into the log; then it never changes. entry_json is the exact RFC 8785 text
        -- whose SHA-256 is event_hash.
        CREATE TABLE ledger_entry (
            entry_id    bigserial   PRIMARY KEY,
            source      text        NOT NULL,
            source_id   text        NOT NULL,
            entry_json  text        NOT NULL,
            event_hash  bytea       NOT NULL CHECK (length(event_hash) = 32),
            leaf_index  bigint      UNIQUE,
            batch_id    bigint,
            appended_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, source_id)
        );
        CREATE INDEX ledger_entry_unsealed ON ledger_entry (entry_id) WHERE leaf_index IS NULL;

        -- A checkpoint of the log: its first tree_size leaves have Merkle root `root`.
        -- status: sealed -> sent -> mined -> anchored; a sealed batch still waiting when a
        -- newer one is anchored is 'superseded' (the newer root covers its leaves).
        CREATE TABLE ledger_batch (
            batch_id         bigserial   PRIMARY KEY,
            first_index      bigint      NOT NULL,
            tree_size        bigint      NOT NULL UNIQUE CHECK (tree_size > first_index),
            root             bytea       NOT NULL UNIQUE CHECK (length(root) = 32),
            sealed_at        timestamptz NOT NULL DEFAULT now(),
            status           text        NOT NULL DEFAULT 'sealed'
                CHECK (status IN ('sealed', 'sent', 'mined', 'anchored', 'superseded')),
            covered_by       bigint      REFERENCES ledger_batch (batch_id),
            chain_id         bigint,
            contract_address text,
            sender           text,
            tx_hash          text,
            tx_hashes        text[]      NOT NULL DEFAULT '{}',
            nonce            bigint,
            gas              bigint,
            max_fee_wei      numeric(78, 0),
            priority_fee_wei numeric(78, 0),
            sent_at          timestamptz,
            block_number     bigint,
            block_hash       text,
            gas_used         bigint,
            anchored_at      timestamptz,
            attempts         integer     NOT NULL DEFAULT 0,
            last_error       text
        );
        CREATE INDEX ledger_batch_open ON ledger_batch (batch_id)
            WHERE status IN ('sealed', 'sent', 'mined');

        -- One receipt per leaf, from the first anchored checkpoint that covers it.
        CREATE TABLE ledger_receipt (
            leaf_index bigint PRIMARY KEY REFERENCES ledger_entry (leaf_index),
            batch_id   bigint NOT NULL REFERENCES ledger_batch (batch_id),
            path       bytea  NOT NULL CHECK (length(path) % 32 = 0)
        );
        CREATE INDEX ledger_receipt_batch ON ledger_receipt (batch_id);

        -- The anchor registry used on each chain.
        CREATE TABLE ledger_registry (
            chain_id         bigint      PRIMARY KEY,
            contract_address text        NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ledger_receipt, ledger_batch, ledger_entry, ledger_registry")
