"""End to end against a real JSON-RPC node (anvil on loopback): reorgs, restarts, fee bumps,
and `fieldmesh verify` with nothing but the node's URL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from edge_agent.signing import DeviceKey
from fieldmesh.cli import main as fieldmesh_main
from kernel.settings import Settings
from ledger import store
from ledger.anvil import DEV_KEYS, AnvilNode
from ledger.chain import Anchorer, Chain
from ledger.receipt import verify_receipt
from tests.ledger.test_sealer import insert_device_events, ledger_db, make_sealer

pytestmark = pytest.mark.integration
__all__ = ["ledger_db"]


def _statuses(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM ledger_batch ORDER BY batch_id")]


def test_anchor_reorged_out_after_confirmation_is_anchored_again(
    ledger_db: str, test_settings: Settings
) -> None:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
        ids = insert_device_events(ledger_db, key, 3)
        with make_sealer(ledger_db, chain, batch_size=1, sender_key=DEV_KEYS[1]) as sealer:
            sealer.tick()
            sealer.tick()
            assert _statuses(ledger_db)[-1] == "anchored"
            with psycopg.connect(ledger_db) as conn:
                before = store.receipt_for(conn, ids[0])
            assert before is not None and verify_receipt(before, chain).ok
            node.reorg(1)  # the anchor's block is replaced by an empty one
            assert verify_receipt(before, chain).code == "root_not_anchored"
            for _ in range(3):
                sealer.tick()
            with psycopg.connect(ledger_db) as conn:
                after = store.receipt_for(conn, ids[0])
        assert after is not None
        assert after.tx_hash != before.tx_hash
        assert verify_receipt(after, chain).ok
        assert _statuses(ledger_db)[-1] == "anchored"


def test_stuck_anchor_gets_its_fees_bumped_and_lands(
    ledger_db: str, test_settings: Settings
) -> None:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
        ids = insert_device_events(ledger_db, key, 2)
        with make_sealer(
            ledger_db, chain, batch_size=1, sender_key=DEV_KEYS[1], bump_after_s=0.01
        ) as sealer:
            sealer.tick()  # deploy while blocks are mined
            node.set_automine(False)
            insert_device_events(ledger_db, key, 1)
            row = None
            for _ in range(6):  # seal, send (not mined), then bump the stuck transaction
                sealer.tick()
                with psycopg.connect(ledger_db) as conn:
                    row = conn.execute(
                        "SELECT tx_hashes, status FROM ledger_batch ORDER BY batch_id DESC LIMIT 1"
                    ).fetchone()
                if row is not None and len(row[0]) >= 2:
                    break
            assert row is not None and len(row[0]) >= 2 and row[1] == "sent"
            node.mine(1)
            node.set_automine(True)
            for _ in range(2):
                sealer.tick()
            with psycopg.connect(ledger_db) as conn:
                receipt = store.receipt_for(conn, ids[0])
            assert _statuses(ledger_db)[-1] == "anchored"
            assert receipt is not None and verify_receipt(receipt, chain).ok


def test_node_restart_keeps_anchors_and_queued_batches_land_after_it(
    ledger_db: str, test_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilNode(state_path=state).start()
    try:
        chain = Chain.connect(node.url, timeout_s=2)
        key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
        first = insert_device_events(ledger_db, key, 2)
        with make_sealer(ledger_db, chain, batch_size=1, sender_key=DEV_KEYS[2]) as sealer:
            sealer.tick()
            sealer.tick()
            node.stop()  # dumps its state
            later = insert_device_events(ledger_db, key, 2)
            report = sealer.tick()
            assert report.chain_error is not None
            assert _statuses(ledger_db)[-1] == "sealed"
            node.start()  # same port, state reloaded
            for _ in range(3):
                sealer.tick()
            assert _statuses(ledger_db)[-1] == "anchored"
            with psycopg.connect(ledger_db) as conn:
                receipts = [store.receipt_for(conn, i) for i in first + later]
        assert all(r is not None and verify_receipt(r, chain).ok for r in receipts)

        # `fieldmesh verify` with only the RPC URL: valid, then a tampered copy.
        assert receipts[0] is not None
        path = tmp_path / "receipt.json"
        path.write_text(json.dumps(receipts[0].to_json()))
        assert fieldmesh_main(["verify", str(path), "--rpc-url", node.url]) == 0
        assert "VALID" in capsys.readouterr().out
        doc = receipts[0].to_json()
        doc["entry"]["payload"]["type"] = "visit.checkout"
        path.write_text(json.dumps(doc))
        assert fieldmesh_main(["verify", str(path), "--rpc-url", node.url]) == 1
        assert "tampered_event" in capsys.readouterr().out
    finally:
        node.stop()


def test_registry_refuses_a_duplicate_root_from_the_same_sender() -> None:
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        address = chain.deploy_registry(DEV_KEYS[0])
        anchorer = Anchorer(chain, address, DEV_KEYS[0])
        root = bytes(range(32))
        mined = anchorer.wait_mined(anchorer.send_anchor(root, 7).tx_hash)
        assert mined.succeeded
        log = chain.anchored_log(address, mined.tx_hash)
        assert log is not None and log["root"] == root and log["tree_size"] == 7
        assert log["sender"] == anchorer.sender
        from ledger.errors import AnchorError

        with pytest.raises(AnchorError):
            anchorer.send_anchor(root, 7)
        # Another sender may anchor the same root: anchors are keyed by sender.
        other = Anchorer(chain, address, DEV_KEYS[1])
        assert other.wait_mined(other.send_anchor(root, 7).tx_hash).succeeded
