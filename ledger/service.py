"""The sealer: takes verified events into the log, seals batches, anchors them, writes receipts.

One process (``fieldmesh ledger run``) owns the log's write side. Each ``tick``:

1. copies verified ``device_event`` rows not yet in the ledger into ``ledger_entry``;
2. seals a batch when ``batch_size`` entries wait or the oldest waited ``batch_interval_s``:
   the entries get leaf indexes and the checkpoint (root, size) is recorded, in one
   transaction, while the in-memory RFC 6962 tree of the whole log grows;
3. moves anchoring forward, with at most one anchor transaction in flight: send the newest
   sealed checkpoint (older sealed ones are covered by it: one transaction for any backlog),
   follow it to the confirmation depth, bump its fees when it is stuck, send it again when
   it disappears (dropped, reorged away, even after confirmation within ``recheck_blocks``);
   when anchored, every leaf it covers without a receipt gets one.

A node that is down only stops step 3: entries and sealed batches wait in PostgreSQL and
are anchored when it answers again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger import sources, store
from ledger.chain import ETH_TESTER_KEY, Anchorer, Chain, SentTx
from ledger.config import LedgerConfig
from ledger.errors import AnchorError, ChainUnavailable, LedgerError
from ledger.merkle import MerkleTree, leaf_hash

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    ingested: int = 0
    sealed_batch: int | None = None
    anchored_batch: int | None = None
    chain_error: str | None = None


class Sealer:
    def __init__(self, dsn: str, config: LedgerConfig, chain_factory: Callable[[], Chain]) -> None:
        self.dsn = dsn
        self.config = config
        self._chain_factory = chain_factory
        self._conn: psycopg.Connection[Any] | None = None
        self._tree = MerkleTree()
        self._anchorer: Anchorer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Sealer:
        self._conn = psycopg.connect(self.dsn, autocommit=True)
        self._reload_tree()
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Sealer:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise LedgerError("Sealer is not open")
        return self._conn

    @property
    def tree(self) -> MerkleTree:
        return self._tree

    def _reload_tree(self) -> None:
        self._tree = MerkleTree.from_entries(store.sealed_leaf_hashes(self.conn))

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except psycopg.OperationalError as exc:
                log.warning("ledger: database unavailable, retrying: %s", exc)
            stop.wait(self.config.poll_s)

    def _ensure_open(self) -> None:
        """A new connection when the database dropped ours (restart, failover, a terminated
        backend): psycopg never revives a broken one, and every tick would fail on it."""
        c = self._conn
        if c is not None and not c.closed and not c.broken:
            return
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()
        self._conn = psycopg.connect(self.dsn, autocommit=True)
        self._reload_tree()  # what was sealed meanwhile (or rolled back) is the truth
        log.info("ledger: reconnected to the database")

    def tick(self, *, force_seal: bool = False) -> TickReport:
        self._ensure_open()
        report = TickReport()
        with self.conn.transaction():
            report.ingested = store.ingest_device_events(self.conn) + sources.ingest_all(self.conn)
        report.sealed_batch = self.seal_if_due(force=force_seal)
        try:
            report.anchored_batch = self.anchor_step()
        except (ChainUnavailable, AnchorError) as exc:
            report.chain_error = str(exc)
            log.warning("ledger: anchoring postponed: %s", exc)
        return report

    # -- sealing ---------------------------------------------------------------------------
    def seal_if_due(self, *, force: bool = False) -> int | None:
        pending, age_s = store.unsealed_stats(self.conn)
        if pending == 0:
            return None
        due = pending >= self.config.batch_size or (
            age_s is not None and age_s >= self.config.batch_interval_s
        )
        if not (due or force):
            return None
        first = self._tree.size
        try:
            with self.conn.transaction():
                rows = store.take_unsealed(self.conn, self.config.max_batch)
                if not rows:
                    return None
                self._tree.append([leaf_hash(h) for _, h in rows])
                batch_id = store.record_batch(
                    self.conn, [i for i, _ in rows], first, self._tree.root()
                )
        except Exception:
            self._reload_tree()  # the transaction rolled back: the tree must too
            raise
        log.info("ledger: sealed batch %d (leaves %d..%d)", batch_id, first, self._tree.size - 1)
        return batch_id

    # -- anchoring -------------------------------------------------------------------------
    def anchorer(self) -> Anchorer:
        if self._anchorer is None:
            chain = self._chain_factory()
            key = self.config.sender_key
            if key is None:
                if chain.rpc_url is not None:
                    raise AnchorError("LEDGER_SENDER_KEY is not set: no account to anchor from")
                key = ETH_TESTER_KEY
            address = self.config.contract_address
            if address is None:
                with self.conn.transaction():
                    address = store.registry_address(self.conn, chain.chain_id)
                    if address is None or not chain.has_code(address):
                        address = chain.deploy_registry(key)
                        store.save_registry(self.conn, chain.chain_id, address)
                        log.info(
                            "ledger: deployed AnchorRegistry at %s on chain %d",
                            address,
                            chain.chain_id,
                        )
            self._anchorer = Anchorer(chain, address, key)
        return self._anchorer

    def anchor_step(self) -> int | None:
        """Move anchoring one step; returns the batch id anchored in this step, if any."""
        a = self.anchorer()
        self._recheck_anchored(a)
        batches = store.open_batches(self.conn)
        if not batches:
            return None
        inflight = [b for b in batches if b.status in ("sent", "mined")]
        if inflight:
            return self._follow(a, inflight[-1])
        return self._send(a, batches[-1])

    def _send(self, a: Anchorer, b: store.BatchRow) -> int | None:
        existing = a.chain.anchor_of(a.contract_address, a.sender, b.root)
        if existing is not None:  # already on chain (an earlier transaction of ours landed)
            block_hash = a.chain.block_hash(existing.block_number)
            return self._finish(a, b, existing.block_number, block_hash, None, None)
        if b.status == "sealed" and b.attempts > 0:
            a.resync_nonce()
        sent = a.send_anchor(b.root, b.tree_size)
        with self.conn.transaction():
            store.update_batch(
                self.conn,
                b.batch_id,
                status="sent",
                tx_hash=sent.tx_hash,
                nonce=sent.nonce,
                gas=sent.gas,
                max_fee_wei=sent.max_fee_wei,
                priority_fee_wei=sent.priority_fee_wei,
                chain_id=a.chain.chain_id,
                contract_address=a.contract_address,
                sender=a.sender,
                attempts=b.attempts + 1,
                last_error=None,
            )
        log.info(
            "ledger: batch %d (size %d) anchor sent: %s nonce %d",
            b.batch_id,
            b.tree_size,
            sent.tx_hash,
            sent.nonce,
        )
        return None

    def _follow(self, a: Anchorer, b: store.BatchRow) -> int | None:
        chain = a.chain
        mined = None
        for h in reversed(b.tx_hashes):
            mined = chain.mined(h)
            if mined is not None:
                break
        if mined is None:
            if any(chain.known(h) for h in b.tx_hashes):
                if b.status == "mined":
                    self._set(b, status="sent")  # reorged back into the pool
                elif b.sent_age_s is not None and b.sent_age_s >= self.config.bump_after_s:
                    self._bump(a, b)
                return None
            log.warning(
                "ledger: anchor of batch %d disappeared (%s); anchoring it again",
                b.batch_id,
                "reorged out" if b.status == "mined" else "dropped",
            )
            self._set(b, status="sealed", last_error="anchor transaction disappeared")
            a.resync_nonce()
            return None
        if not mined.succeeded:
            self._set(b, status="sealed", last_error=f"anchor transaction {mined.tx_hash} reverted")
            return None
        if b.status != "mined" or b.block_hash != mined.block_hash:
            self._set(
                b,
                status="mined",
                block_number=mined.block_number,
                block_hash=mined.block_hash,
                gas_used=mined.gas_used,
            )
        depth = chain.head() - mined.block_number + 1
        if (
            depth >= self.config.confirmations
            and chain.block_hash(mined.block_number) == mined.block_hash
        ):
            return self._finish(
                a, b, mined.block_number, mined.block_hash, mined.tx_hash, mined.gas_used
            )
        return None

    def _bump(self, a: Anchorer, b: store.BatchRow) -> None:
        assert b.tx_hash is not None and b.nonce is not None and b.gas is not None
        stuck = SentTx(b.tx_hash, b.nonce, b.gas, b.max_fee_wei or 0, b.priority_fee_wei or 0)
        new = a.bump(stuck, b.root, b.tree_size)
        self._set(
            b,
            tx_hash=new.tx_hash,
            max_fee_wei=new.max_fee_wei,
            priority_fee_wei=new.priority_fee_wei,
        )

    def _set(self, b: store.BatchRow, **fields: Any) -> None:
        with self.conn.transaction():
            store.update_batch(self.conn, b.batch_id, **fields)

    def _finish(
        self,
        a: Anchorer,
        b: store.BatchRow,
        block_number: int,
        block_hash: str | None,
        tx_hash: str | None,
        gas_used: int | None,
    ) -> int:
        """Mark anchored, cover older sealed batches, write the missing receipts: one transaction."""
        size = b.tree_size
        with self.conn.transaction():
            fields: dict[str, Any] = {
                "status": "anchored",
                "block_number": block_number,
                "block_hash": block_hash,
                "chain_id": a.chain.chain_id,
                "contract_address": a.contract_address,
                "sender": a.sender,
            }
            if gas_used is not None:
                fields["gas_used"] = gas_used
            store.update_batch(self.conn, b.batch_id, **fields)
            if tx_hash is not None:
                self.conn.execute(
                    "UPDATE ledger_batch SET tx_hash = %s WHERE batch_id = %s",
                    (tx_hash, b.batch_id),
                )
            store.supersede_older(self.conn, b.batch_id)
            missing = store.leaves_without_receipt(self.conn, size)
            tree = self._tree
            n = store.write_receipts(
                self.conn,
                b.batch_id,
                ((i, b"".join(tree.inclusion_proof(i, size))) for i in missing),
            )
            sources.link_audit_receipts(self.conn)
        log.info("ledger: batch %d anchored in block %d (%d receipts)", b.batch_id, block_number, n)
        return b.batch_id

    def _recheck_anchored(self, a: Anchorer) -> None:
        """An anchor that vanished in a reorg after confirmation goes back to the queue."""
        head = a.chain.head()
        for b in store.recent_anchored(self.conn, head - self.config.recheck_blocks):
            if a.chain.anchor_of(a.contract_address, a.sender, b.root) is not None:
                continue
            log.warning(
                "ledger: anchored batch %d is gone from the chain (reorg); re-anchoring", b.batch_id
            )
            with self.conn.transaction():
                store.drop_receipts(self.conn, b.batch_id)
                store.update_batch(
                    self.conn,
                    b.batch_id,
                    status="sealed",
                    last_error="anchor reorged out after confirmation",
                )
            a.resync_nonce()
