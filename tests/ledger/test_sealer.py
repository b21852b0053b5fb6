"""The sealer against the real PostgreSQL and the in-process eth-tester chain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from edge_agent.signing import DeviceKey
from kernel.settings import Settings
from ledger import store
from ledger.chain import Chain
from ledger.config import LedgerConfig
from ledger.errors import ChainUnavailable
from ledger.receipt import Receipt, check_offline, verify_receipt
from ledger.service import Sealer
from ledger.verify import verify_event

pytestmark = pytest.mark.integration
T_MS = 1_764_000_000_000


@pytest.fixture
def ledger_db(db_dsn: str) -> Iterator[str]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE ledger_receipt, ledger_entry, ledger_batch, ledger_registry RESTART IDENTITY CASCADE"
        )
    yield db_dsn


def insert_device_events(
    dsn: str, key: DeviceKey | None, n: int, *, tamper: bool = False, device_id: str | None = None
) -> list[str]:
    """Events as the gateway stores them: verified with ledger.verify.verify_event."""
    device_id = device_id or (key.device_id if key else f"dev-{uuid.uuid4().hex[:6]}")
    ids = []
    seq = uuid.uuid4().int % 2**62
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (device_id, tenant, public_key) VALUES (%s, 'acme', %s) ON CONFLICT DO NOTHING",
            (device_id, key.public_key_bytes if key else None),
        )
        for i in range(n):
            event_id = str(uuid.uuid4())
            t = T_MS + i
            data: dict[str, Any] = {"account": "acc-1", "i": i}
            sig = key.sign(event_id, t, "visit.checkin", data) if key else None
            if tamper:
                data = {**data, "i": i + 1000}
            result = verify_event(
                key.public_key_bytes if key else None,
                device_id,
                event_id,
                t,
                "visit.checkin",
                data,
                sig,
            )
            conn.execute(
                "INSERT INTO device_event (device_id, seq, idx, event_id, time, type, data, sig, verified, verify_reason) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    device_id,
                    seq,
                    i,
                    event_id,
                    datetime.fromtimestamp(t / 1000, UTC),
                    "visit.checkin",
                    json.dumps(data),
                    sig,
                    result.verified,
                    result.reason,
                ),
            )
            ids.append(event_id)
    return ids


def make_sealer(dsn: str, chain: Chain, **cfg: Any) -> Sealer:
    config = LedgerConfig(batch_size=cfg.pop("batch_size", 5), batch_interval_s=3600, **cfg)
    return Sealer(dsn, config, lambda: chain)


def test_verified_events_are_sealed_anchored_and_get_receipts_that_verify(
    ledger_db: str, test_settings: Settings
) -> None:
    chain = Chain.connect(None)
    key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
    ids = insert_device_events(ledger_db, key, 12)
    with make_sealer(ledger_db, chain) as sealer:
        for _ in range(4):
            sealer.tick()
        with psycopg.connect(ledger_db) as conn:
            receipts = [store.receipt_for(conn, i, "device_event") for i in ids]
            statuses = [
                r[0] for r in conn.execute("SELECT status FROM ledger_batch ORDER BY batch_id")
            ]
    # 12 events waiting >= batch size 5: one batch takes everything that waits.
    assert statuses == ["anchored"]
    anchored = [r for r in receipts if r is not None]
    assert len(anchored) == 12
    for r in anchored:
        verdict = verify_receipt(r, chain)
        assert verdict.ok, verdict.message
        assert r.entry["payload"]["sig"] is not None
    # One batch (other tests' verified events may share it): one root, distinct leaves.
    assert len({(r.root, r.tree_size) for r in anchored}) == 1
    assert len({r.leaf_index for r in anchored}) == 12


def test_unverified_events_never_enter_the_log(ledger_db: str, test_settings: Settings) -> None:
    chain = Chain.connect(None)
    key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
    bad = insert_device_events(ledger_db, key, 3, tamper=True)
    unsigned = insert_device_events(ledger_db, None, 2)
    good = insert_device_events(ledger_db, key, 1)
    with make_sealer(ledger_db, chain, batch_size=1) as sealer:
        sealer.tick()
        sealer.tick()
        with psycopg.connect(ledger_db) as conn:
            in_log = {r[0] for r in conn.execute("SELECT source_id FROM ledger_entry")}
            visible = conn.execute(
                "SELECT count(*) FROM device_event WHERE event_id = ANY(%s) AND NOT verified",
                (bad + unsigned,),
            ).fetchone()
    assert set(good) <= in_log
    assert not (set(bad) | set(unsigned)) & in_log
    assert visible == (5,)


def test_tampered_receipt_and_wrong_path_and_foreign_chain_get_clear_verdicts(
    ledger_db: str, test_settings: Settings
) -> None:
    chain = Chain.connect(None)
    key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
    ids = insert_device_events(ledger_db, key, 4)
    with make_sealer(ledger_db, chain, batch_size=4) as sealer:
        sealer.tick()
        sealer.tick()
        with psycopg.connect(ledger_db) as conn:
            receipt = store.receipt_for(conn, ids[1])
    assert receipt is not None
    doc = receipt.to_json()

    tampered = json.loads(json.dumps(doc))
    tampered["entry"]["payload"]["data"]["account"] = "acc-other"
    assert verify_receipt(Receipt.from_json(tampered), chain).code == "tampered_event"

    wrong_path = json.loads(json.dumps(doc))
    wrong_path["inclusion_path"][0] = "00" * 32
    assert verify_receipt(Receipt.from_json(wrong_path), chain).code == "wrong_path"

    other_chain = json.loads(json.dumps(doc))
    other_chain["chain_id"] = 1
    assert verify_receipt(Receipt.from_json(other_chain), chain).code == "wrong_chain"

    fresh_chain = Chain.connect(None)  # same chain id, but this chain never saw the root
    fresh_chain.deploy_registry("0x" + "00" * 31 + "01")
    verdict = verify_receipt(receipt, fresh_chain)
    assert verdict.code == "root_not_anchored", verdict.message

    assert check_offline(receipt).ok


class DownChain(Chain):
    """A chain whose node stops answering while `down` is set (the real eth-tester behind it)."""

    down = False

    def __getattribute__(self, name: str) -> Any:
        if name in (
            "head",
            "anchor_of",
            "mined",
            "known",
            "fees",
            "block_hash",
            "has_code",
        ) and object.__getattribute__(self, "down"):

            def refuse(*_: Any, **__: Any) -> Any:
                raise ChainUnavailable("node down (test)")

            return refuse
        return object.__getattribute__(self, name)


def test_batches_queue_while_the_node_is_down_and_are_anchored_when_it_returns(
    ledger_db: str, test_settings: Settings
) -> None:
    base = Chain.connect(None)
    chain = DownChain(base.w3, None)
    key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
    with make_sealer(ledger_db, chain, batch_size=2) as sealer:
        sealer.tick()  # deploys the registry (and anchors earlier tests' events) while up
        sealer.tick()
        chain.down = True
        ids: list[str] = []
        reports = []
        for _ in range(3):
            ids += insert_device_events(ledger_db, key, 2)
            reports.append(sealer.tick())
        assert all(r.chain_error for r in reports)
        with psycopg.connect(ledger_db) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM ledger_batch WHERE status = 'sealed'"
            ).fetchone()
        assert waiting == (3,)
        chain.down = False
        for _ in range(3):
            sealer.tick()
        with psycopg.connect(ledger_db) as conn:
            statuses = [
                r[0] for r in conn.execute("SELECT status FROM ledger_batch ORDER BY batch_id")
            ]
            receipts = [store.receipt_for(conn, i) for i in ids]
    # One transaction for the whole backlog: the newest checkpoint covers the older ones.
    assert statuses[-3:] == ["superseded", "superseded", "anchored"]
    assert all(r is not None and verify_receipt(r, base).ok for r in receipts)
