"""HTTP: GET /api/v1/ledger/events/{id}/proof, batches and consistency, on the real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge_agent.signing import DeviceKey
from fieldmesh.app import build_app
from identity.auth import create_user, issue_token
from kernel.settings import Settings
from ledger import store
from ledger.chain import Chain
from ledger.merkle import verify_consistency
from ledger.receipt import Receipt, verify_receipt
from ledger.routes import ProofCache
from ledger.sources import VISIT_COMPLETED, WORK_ORDER_DONE
from tests.crm_sync.fixtures import make_site
from tests.ledger.test_sealer import insert_device_events, ledger_db, make_sealer

pytestmark = pytest.mark.integration
__all__ = ["ledger_db"]


async def _get_all(
    settings: Settings, paths: list[str], headers: dict[str, str] | None = None
) -> list[tuple[int, Any]]:
    app = build_app(settings, route_modules=("ledger.routes",))
    async with TestClient(TestServer(app)) as client:
        out = []
        for p in paths:
            resp = await client.get(p, headers=headers)
            out.append((resp.status, await resp.json()))
        return out


async def _user(dsn: str, role: str, territory_id: int | None = None) -> tuple[int, str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        uid = await create_user(
            conn,
            email=f"{role}-{uuid.uuid4().hex[:8]}@ledger.test",
            name=role,
            role=role,
            territory_id=territory_id,
        )
        _, token = await issue_token(conn, uid, "test")
        await conn.commit()
        return uid, token


def _bearer(dsn: str, role: str, territory_id: int | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {asyncio.run(_user(dsn, role, territory_id))[1]}"}


def test_proof_endpoint_serves_receipts_and_explains_missing_ones(
    ledger_db: str, test_settings: Settings
) -> None:
    chain = Chain.connect(None)
    key = DeviceKey.generate(f"dev-{uuid.uuid4().hex[:6]}")
    first = insert_device_events(ledger_db, key, 3)
    unsigned = insert_device_events(ledger_db, None, 1)
    with make_sealer(ledger_db, chain, batch_size=1) as sealer:
        sealer.tick()
        sealer.tick()
        second = insert_device_events(ledger_db, key, 2)
        sealer.tick()
        sealer.tick()
        sizes = sealer.tree.size
    pending = insert_device_events(ledger_db, key, 1)
    settings = test_settings.with_overrides(database_url=ledger_db)
    results = asyncio.run(
        _get_all(
            settings,
            [
                f"/api/v1/ledger/events/{first[0]}/proof",
                f"/api/v1/ledger/events/{unsigned[0]}/proof",
                f"/api/v1/ledger/events/{uuid.uuid4()}/proof",
                f"/api/v1/ledger/events/{pending[0]}/proof",
                "/api/v1/ledger/batches",
            ],
            _bearer(ledger_db, "viewer"),
        )
    )
    (
        (ok_status, ok_body),
        (unv_status, unv_body),
        (nf_status, _),
        (pend_status, pend_body),
        (_, b),
    ) = results
    assert ok_status == 200
    assert verify_receipt(Receipt.from_json(ok_body), chain).ok
    assert unv_status == 422 and unv_body["error"]["code"] == "unverified"
    assert nf_status == 404
    assert pend_status == 409 and pend_body["error"]["code"] == "not_anchored"
    batches = b["batches"]
    assert len(batches) == 2 and batches[0]["tree_size"] == sizes
    old, new = batches[1], batches[0]
    # asked again (answered from the cache of made proofs) and once more in the other order
    pair = f"/api/v1/ledger/consistency?from={old['tree_size']}&to={new['tree_size']}"
    [(c_status, c_body), (again_status, again_body), (other_status, _)] = asyncio.run(
        _get_all(
            settings,
            [
                pair,
                pair,
                f"/api/v1/ledger/consistency?from={new['tree_size']}&to={new['tree_size']}",
            ],
        )
    )
    assert c_status == 200 and (again_status, again_body) == (200, c_body)
    assert other_status == 200
    assert verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root"]),
        bytes.fromhex(new["root"]),
        [bytes.fromhex(p) for p in c_body["proof"]],
    )
    assert second

    # checkpoints and consistency proofs are public: a verifier needs no account
    [(public_status, _), (proof_status, _)] = asyncio.run(
        _get_all(
            settings,
            ["/api/v1/ledger/batches", f"/api/v1/ledger/events/{first[0]}/proof"],
        )
    )
    assert (public_status, proof_status) == (200, 401)


def test_receipts_are_scoped_to_the_record_they_prove(
    ledger_db: str, test_settings: Settings
) -> None:
    """A rep gets receipts of their territory's devices, accounts and their own visits;
    another territory's answer 404, explanations ("not anchored", "unverified") included."""
    with psycopg.connect(ledger_db) as conn:
        mine, theirs = make_site(conn), make_site(conn)
    rep_id, rep_token = asyncio.run(_user(ledger_db, "rep", mine.territory_id))
    rep = {"Authorization": f"Bearer {rep_token}"}
    my_key, their_key = DeviceKey.generate(mine.device_id), DeviceKey.generate(theirs.device_id)
    my_events = insert_device_events(ledger_db, my_key, 2)
    their_events = insert_device_events(ledger_db, their_key, 2)

    def record(source: str, payload: dict[str, Any]) -> str:
        source_id = str(uuid.uuid4().int % 2**52)
        with psycopg.connect(ledger_db) as conn:
            store.append(conn, source, source_id, payload)
        return source_id

    my_wo = record(WORK_ORDER_DONE, {"account_id": mine.account_id, "assignee_id": None})
    their_wo = record(WORK_ORDER_DONE, {"account_id": theirs.account_id, "assignee_id": None})
    # a visit the rep made at another territory's account: theirs to see, as its rep
    my_visit = record(VISIT_COMPLETED, {"account_id": theirs.account_id, "rep_id": rep_id})
    their_visit = record(VISIT_COMPLETED, {"account_id": theirs.account_id, "rep_id": None})
    other = record("partner.import", {"account_id": mine.account_id})
    chain = Chain.connect(None)
    with make_sealer(ledger_db, chain, batch_size=1) as sealer:
        sealer.tick()
        sealer.tick()
    their_pending = insert_device_events(ledger_db, their_key, 1)
    their_unsigned = insert_device_events(ledger_db, None, 1, device_id=theirs.device_id)
    settings = test_settings.with_overrides(database_url=ledger_db)

    def proof(source_id: str, source: str | None = None) -> str:
        q = f"?source={source}" if source else ""
        return f"/api/v1/ledger/events/{source_id}/proof{q}"

    paths = {
        "my_event": proof(my_events[0]),
        "my_wo": proof(my_wo, WORK_ORDER_DONE),
        "my_visit": proof(my_visit, VISIT_COMPLETED),
        "their_event": proof(their_events[0]),
        "their_wo": proof(their_wo),
        "their_visit": proof(their_visit),
        "their_pending": proof(their_pending[0]),
        "their_unsigned": proof(their_unsigned[0]),
        "other_source": proof(other),
    }
    got = dict(zip(paths, asyncio.run(_get_all(settings, list(paths.values()), rep)), strict=True))
    for name in ("my_event", "my_wo", "my_visit"):
        status, body = got[name]
        assert status == 200, (name, body)
        assert verify_receipt(Receipt.from_json(body), chain).ok
    for name in (
        "their_event",
        "their_wo",
        "their_visit",
        "their_pending",
        "their_unsigned",
        "other_source",
    ):
        status, body = got[name]
        assert (status, body["error"]["code"]) == (404, "not_found"), (name, body)
    # the same requests by an admin: every record exists
    admin = _bearer(ledger_db, "admin")
    seen = asyncio.run(_get_all(settings, list(paths.values()), admin))
    assert [s for s, _ in seen] == [200, 200, 200, 200, 200, 200, 409, 422, 200]


def test_the_proof_cache_keeps_the_newest_proofs() -> None:
    cache = ProofCache(size=2)
    a, b, c = ((1, n, b"r1", b"r%d" % n) for n in (2, 3, 4))
    cache.put(a, [b"pa"])
    cache.put(b, [b"pb"])
    assert cache.get(a) == [b"pa"]  # a is now the newer of the two
    cache.put(c, [b"pc"])
    assert cache.get(b) is None and cache.get(a) == [b"pa"] and cache.get(c) == [b"pc"]
    # another root for the same sizes (another log) is another proof
    assert cache.get((1, 2, b"r1", b"other")) is None
