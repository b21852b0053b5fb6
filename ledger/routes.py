"""HTTP: receipts (proofs) of events, the list of checkpoints, consistency proofs between them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.web import DB_POOL
from ledger.merkle import MerkleError, MerkleTree
from ledger.store import receipt_for_async


async def event_proof(request: web.Request) -> web.Response:
    event_id = request.match_info["id"]
    source = request.query.get("source")
    async with request.app[DB_POOL].connection() as conn:
        receipt = await receipt_for_async(conn, event_id, source)
        if receipt is not None:
            return web.json_response(receipt.to_json())
        cur = await conn.execute(
            "SELECT leaf_index FROM ledger_entry WHERE source_id = %s AND (%s::text IS NULL OR source = %s)",
            (event_id, source, source),
        )
        entry = await cur.fetchone()
        if entry is not None:
            state = "sealed, anchor pending" if entry[0] is not None else "waiting to be sealed"
            raise Conflict(
                f"event {event_id} is in the ledger but not anchored yet ({state})",
                code="not_anchored",
            )
        cur = await conn.execute(
            "SELECT verified, verify_reason FROM device_event WHERE event_id = %s", (event_id,)
        )
        dev = await cur.fetchone()
    if dev is not None and not dev[0]:
        raise Unprocessable(
            f"event {event_id} is unverified and never enters the ledger: {dev[1]}",
            code="unverified",
            field="id",
        )
    if dev is not None:
        raise Conflict(
            f"event {event_id} is verified and waits to enter the ledger", code="not_anchored"
        )
    raise NotFound(f"no event {event_id} in the ledger", code="not_found")


async def batches(request: web.Request) -> web.Response:
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 1000)
    except ValueError:
        raise Unprocessable("limit: expected an integer", field="limit") from None
    async with request.app[DB_POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT batch_id, first_index, tree_size, root, status, covered_by, chain_id, "
            "contract_address, sender, tx_hash, block_number, gas_used, sealed_at, anchored_at, last_error "
            "FROM ledger_batch ORDER BY batch_id DESC LIMIT %s",
            (limit,),
        )
        rows = await cur.fetchall()
    out: list[dict[str, Any]] = []
    for r in rows:
        out.append(
            {
                "batch_id": r[0],
                "first_index": r[1],
                "tree_size": r[2],
                "root": bytes(r[3]).hex(),
                "status": r[4],
                "covered_by": r[5],
                "chain_id": r[6],
                "contract_address": r[7],
                "anchor_sender": r[8],
                "tx_hash": r[9],
                "block_number": r[10],
                "gas_used": r[11],
                "sealed_at": r[12].isoformat(),
                "anchored_at": r[13].isoformat() if r[13] else None,
                "last_error": r[14],
            }
        )
    return web.json_response({"batches": out})


def _size(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    try:
        value = int(raw) if raw is not None else -1
    except ValueError:
        value = -1
    if value < 1:
        raise Unprocessable(f"{name}: expected a tree size >= 1", field=name)
    return value


async def consistency(request: web.Request) -> web.Response:
    """Proof that the log at size `from` is a prefix of the log at size `to` (both checkpoints)."""
    first, second = _size(request, "from"), _size(request, "to")
    if first > second:
        raise Unprocessable("from: must not exceed to", field="from")
    async with request.app[DB_POOL].connection() as conn:
        cur = await conn.execute(
            "SELECT tree_size, root FROM ledger_batch WHERE tree_size IN (%s, %s)", (first, second)
        )
        roots = {int(r[0]): bytes(r[1]) for r in await cur.fetchall()}
        for name, size in (("from", first), ("to", second)):
            if size not in roots:
                raise NotFound(
                    f"{name}: no sealed checkpoint of tree size {size}", code="no_checkpoint"
                )
        cur = await conn.execute(
            "SELECT event_hash FROM ledger_entry WHERE leaf_index < %s ORDER BY leaf_index",
            (second,),
        )
        hashes = [bytes(r[0]) for r in await cur.fetchall()]
    tree = MerkleTree.from_entries(hashes)
    try:
        proof = tree.consistency_proof(first, second)
    except MerkleError as exc:
        raise Unprocessable(str(exc)) from exc
    return web.json_response(
        {
            "from": first,
            "to": second,
            "from_root": roots[first].hex(),
            "to_root": roots[second].hex(),
            "proof": [p.hex() for p in proof],
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/ledger/events/{id}/proof", event_proof)
    app.router.add_get("/api/v1/ledger/batches", batches)
    app.router.add_get("/api/v1/ledger/consistency", consistency)
