"""HTTP: receipts (proofs) of events, the list of checkpoints, consistency proofs between them.

Who may fetch a receipt: a receipt reveals the record it proves, so it is scoped to that
record's visibility. A device event's receipt is visible to whoever may see the device
(`telemetry.access`); a visit's to whoever may see its account or is (or manages) its rep;
a completed work order's to whoever may see its account or is (or manages) its assignee
(`crm.access`); an entry of any other source to admins and viewers only. Anything else
answers 404, as if it did not exist, and so do the "unverified" and "not anchored yet"
explanations. Public verification needs no API: whoever holds a receipt (a customer it was
handed to) checks it against the chain with `fieldmesh verify <receipt.json>`.

Checkpoints (batches) and consistency proofs are public: they hold only Merkle roots, tree
sizes and anchor transactions, which are on the chain anyway, and a verifier needs them
to check that the log only grows.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from psycopg import sql

from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.http import Access, Req, Routes
from kernel.principal import Principal
from ledger.canonical import DEVICE_EVENT_SOURCE
from ledger.merkle import MerkleError, MerkleTree
from ledger.sources import VISIT_CHECKIN, VISIT_COMPLETED, WORK_ORDER_DONE
from ledger.store import receipt_from_row

routes = Routes("ledger", "Receipts of field events, and the log's checkpoints")

# (principal, SQL expression of an id) -> SQL condition "the principal may see that record"
Clause = Callable[[Principal, sql.Composable], tuple[sql.Composable, list[Any]]]


@dataclass(frozen=True, slots=True)
class RecordScopes:
    """Who may see a device and an account: the telemetry and CRM policies
    (`telemetry.access.device_clause`, `crm.access.account_clause`), given by the
    composition root, since the ledger imports neither package."""

    device: Clause
    account: Clause


def _nothing(principal: Principal, column: sql.Composable) -> tuple[sql.Composable, list[Any]]:
    return sql.SQL("FALSE"), []


RECORD_SCOPES = web.AppKey("ledger_record_scopes", RecordScopes)
# Without the policies, only admins and viewers (who see everything) get receipts.
DENY_ALL = RecordScopes(_nothing, _nothing)

Size = Annotated[int, msgspec.Meta(ge=1, le=2**62, description="a tree size")]


class EventPath(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="source id")]


class ProofQuery(msgspec.Struct, frozen=True):
    source: (
        Annotated[
            str, msgspec.Meta(max_length=100, description="the entry's source, e.g. device_event")
        ]
        | None
    ) = None


class ReceiptOut(msgspec.Struct, frozen=True):
    v: int
    entry: dict[str, Any]
    event_hash: str
    leaf_index: int
    tree_size: int
    inclusion_path: list[str]
    root: str
    chain_id: int
    contract_address: str
    anchor_sender: str
    tx_hash: str | None
    block_number: int | None


class BatchQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class BatchOut(msgspec.Struct, frozen=True):
    batch_id: int
    first_index: int
    tree_size: int
    root: str
    status: str
    covered_by: int | None
    chain_id: int | None
    contract_address: str | None
    anchor_sender: str | None
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    sealed_at: datetime
    anchored_at: datetime | None
    last_error: str | None


class BatchPage(msgspec.Struct, frozen=True):
    batches: list[BatchOut]


class ConsistencyQuery(msgspec.Struct, frozen=True, rename={"first": "from", "second": "to"}):
    first: Size
    second: Size


class ConsistencyOut(msgspec.Struct, frozen=True, rename={"first": "from", "second": "to"}):
    first: int
    second: int
    from_root: str
    to_root: str
    proof: list[str]


def entry_clause(
    principal: Principal, scopes: RecordScopes, alias: str = "e"
) -> tuple[sql.Composable, list[Any]]:
    """SQL condition: the ledger entry `alias` proves a record the principal may see."""
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    source = sql.Identifier(alias, "source")
    payload = sql.SQL("({}::jsonb -> 'payload')").format(sql.Identifier(alias, "entry_json"))

    def number(key: str) -> sql.Composable:
        return sql.SQL("({} ->> {})::bigint").format(payload, sql.Literal(key))

    device, device_p = scopes.device(principal, sql.SQL("({} ->> 'device_id')").format(payload))
    account, account_p = scopes.account(principal, number("account_id"))
    team = list(principal.team_user_ids)
    cond = sql.SQL(
        "(({src} = %s AND {device})"
        " OR ({src} IN (%s, %s) AND ({account} OR {rep} = ANY(%s)))"
        " OR ({src} = %s AND ({account} OR {assignee} = ANY(%s))))"
    ).format(
        src=source,
        device=device,
        account=account,
        rep=number("rep_id"),
        assignee=number("assignee_id"),
    )
    params = [
        DEVICE_EVENT_SOURCE,
        *device_p,
        VISIT_CHECKIN,
        VISIT_COMPLETED,
        *account_p,
        team,
        WORK_ORDER_DONE,
        *account_p,
        team,
    ]
    return cond, params


_RECEIPT = """
SELECT e.entry_json, e.event_hash, e.leaf_index, r.path, b.tree_size, b.root, b.chain_id,
       b.contract_address, b.sender, b.tx_hash, b.block_number, e.source
FROM ledger_entry e
JOIN ledger_receipt r ON r.leaf_index = e.leaf_index
JOIN ledger_batch b ON b.batch_id = r.batch_id
WHERE e.source_id = %s AND (%s::text IS NULL OR e.source = %s) AND {}
ORDER BY e.leaf_index LIMIT 1
"""


async def _no_receipt(req: Req, conn: Any, event_id: str, source: str | None) -> Exception:
    """Why a visible receipt is missing: pending, unverified, waiting, or not found."""
    scopes = req.app.get(RECORD_SCOPES, DENY_ALL)
    visible, params = entry_clause(req.user, scopes)
    cur = await conn.execute(
        sql.SQL(
            "SELECT e.leaf_index FROM ledger_entry e WHERE e.source_id = %s "
            "AND (%s::text IS NULL OR e.source = %s) AND {} LIMIT 1"
        ).format(visible),
        [event_id, source, source, *params],
    )
    entry = await cur.fetchone()
    if entry is not None:
        state = "sealed, anchor pending" if entry[0] is not None else "waiting to be sealed"
        return Conflict(
            f"event {event_id} is in the ledger but not anchored yet ({state})",
            code="not_anchored",
        )
    if source is None or source == DEVICE_EVENT_SOURCE:
        device: sql.Composable
        device_p: list[Any]
        if req.user.sees_everything:
            device, device_p = sql.SQL("TRUE"), []
        else:
            device, device_p = scopes.device(req.user, sql.Identifier("d", "device_id"))
        cur = await conn.execute(
            sql.SQL(
                "SELECT d.verified, d.verify_reason FROM device_event d "
                "WHERE d.event_id = %s AND {} LIMIT 1"
            ).format(device),
            [event_id, *device_p],
        )
        dev = await cur.fetchone()
        if dev is not None and not dev[0]:
            return Unprocessable(
                f"event {event_id} is unverified and never enters the ledger: {dev[1]}",
                code="unverified",
                field="id",
            )
        if dev is not None:
            return Conflict(
                f"event {event_id} is verified and waits to enter the ledger",
                code="not_anchored",
            )
    return NotFound(f"no event {event_id} in the ledger", code="not_found", field="id")


@routes.get(
    "/api/v1/ledger/events/{id}/proof",
    access=Access.read(
        unscoped="a receipt is served only when the caller may see the record it proves "
        "(device, account, rep or assignee); any other answers 404"
    ),
    summary="The receipt of a field event: its entry, inclusion proof and anchor",
    description="`source` picks among entries sharing an id (visit.checkin and "
    "visit.completed of one visit). 409 `not_anchored` while the entry waits for its "
    "anchor; 422 `unverified` for a device event whose signature failed.",
    errors=(409,),
)
async def event_proof(req: Req, path: EventPath, query: ProofQuery) -> ReceiptOut:
    visible, params = entry_clause(req.user, req.app.get(RECORD_SCOPES, DENY_ALL))
    async with req.connection() as conn:
        cur = await conn.execute(
            sql.SQL(_RECEIPT).format(visible),
            [path.id, query.source, query.source, *params],
        )
        row = await cur.fetchone()
        if row is None:
            raise await _no_receipt(req, conn, path.id, query.source)
    return ReceiptOut(**receipt_from_row(row).to_json())


@routes.get(
    "/api/v1/ledger/batches",
    access=Access.public(
        "checkpoints hold only Merkle roots, tree sizes and anchor transactions, public on "
        "the chain anyway; verifiers need them without an account"
    ),
    summary="The log's checkpoints (sealed batches), newest first",
)
async def batches(req: Req, query: BatchQuery) -> BatchPage:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT batch_id, first_index, tree_size, root, status, covered_by, chain_id, "
            "contract_address, sender, tx_hash, block_number, gas_used, sealed_at, anchored_at, "
            "last_error FROM ledger_batch ORDER BY batch_id DESC LIMIT %s",
            (query.limit,),
        )
        rows = await cur.fetchall()
    return BatchPage([BatchOut(r[0], r[1], r[2], bytes(r[3]).hex(), *r[4:]) for r in rows])


@routes.get(
    "/api/v1/ledger/consistency",
    access=Access.public(
        "a consistency proof holds only hashes of the log's tree; verifiers need it without "
        "an account"
    ),
    summary="Proof that the log at size `from` is a prefix of the log at size `to`",
    description="Both sizes must be sealed checkpoints (404 `no_checkpoint` otherwise).",
    errors=(404,),
)
async def consistency(req: Req, query: ConsistencyQuery) -> ConsistencyOut:
    first, second = query.first, query.second
    if first > second:
        raise Unprocessable("from: must not exceed to", field="from")
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT tree_size, root FROM ledger_batch WHERE tree_size IN (%s, %s)", (first, second)
        )
        roots = {int(r[0]): bytes(r[1]) for r in await cur.fetchall()}
        for name, size in (("from", first), ("to", second)):
            if size not in roots:
                raise NotFound(
                    f"{name}: no sealed checkpoint of tree size {size}",
                    code="no_checkpoint",
                    field=name,
                )
    key = (first, second, roots[first], roots[second])
    cache = req.app[_PROOFS]
    proof = cache.get(key)
    if proof is None:
        # one rebuild at a time per process, off the event loop and holding no connection
        # while it waits: the route is public, and a rebuild hashes every leaf up to `to`
        # (0.2 CPU-s at 200,000)
        async with req.app[_PROOF_LOCK]:
            proof = cache.get(key)
            if proof is None:
                async with req.connection() as conn:
                    cur = await conn.execute(
                        "SELECT event_hash FROM ledger_entry WHERE leaf_index < %s"
                        " ORDER BY leaf_index",
                        (second,),
                    )
                    hashes = [bytes(r[0]) for r in await cur.fetchall()]
                proof = await asyncio.to_thread(_consistency, hashes, first, second)
                cache.put(key, proof)
    return ConsistencyOut(
        first, second, roots[first].hex(), roots[second].hex(), [p.hex() for p in proof]
    )


class ProofCache:
    """Consistency proofs already made, newest kept. Sealed checkpoints never change, so a
    proof between two of them (keyed with both roots) stays true."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, int, bytes, bytes], list[bytes]] = OrderedDict()

    def get(self, key: tuple[int, int, bytes, bytes]) -> list[bytes] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[int, int, bytes, bytes], proof: list[bytes]) -> None:
        self._items[key] = proof
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


_PROOFS = web.AppKey("ledger_proofs", ProofCache)
_PROOF_LOCK = web.AppKey("ledger_proof_lock", asyncio.Lock)


def _consistency(hashes: list[bytes], first: int, second: int) -> list[bytes]:
    try:
        return MerkleTree.from_entries(hashes).consistency_proof(first, second)
    except MerkleError as exc:
        raise Unprocessable(str(exc)) from exc


def setup(app: web.Application) -> None:
    app[_PROOFS] = ProofCache()
    app[_PROOF_LOCK] = asyncio.Lock()
    routes.mount(app)
