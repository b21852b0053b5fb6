"""HTTP: GET /api/v1/ledger/events/{id}/proof, batches and consistency, on the real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge_agent.signing import DeviceKey
from fieldmesh.app import build_app
from kernel.settings import Settings
from ledger.chain import Chain
from ledger.merkle import verify_consistency
from ledger.receipt import Receipt, verify_receipt
from tests.ledger.test_sealer import insert_device_events, ledger_db, make_sealer

pytestmark = pytest.mark.integration
__all__ = ["ledger_db"]


async def _get_all(settings: Settings, paths: list[str]) -> list[tuple[int, Any]]:
    app = build_app(settings, route_modules=("ledger.routes",))
    async with TestClient(TestServer(app)) as client:
        out = []
        for p in paths:
            resp = await client.get(p)
            out.append((resp.status, await resp.json()))
        return out


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
    [(c_status, c_body)] = asyncio.run(
        _get_all(
            settings, [f"/api/v1/ledger/consistency?from={old['tree_size']}&to={new['tree_size']}"]
        )
    )
    assert c_status == 200
    assert verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root"]),
        bytes.fromhex(new["root"]),
        [bytes.fromhex(p) for p in c_body["proof"]],
    )
    assert second
