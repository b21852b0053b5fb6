"""The ledger's PostgreSQL adapter (psycopg 3): entries, batches, receipts, registries.

``append`` is the API other packages call inside their own transactions to put a record
into the ledger (idempotent on ``(source, source_id)``). Sealing and anchoring state is
only written by the sealer service (``ledger.service``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledger.canonical import DEVICE_EVENT_SOURCE, device_event_payload, entry_bytes
from ledger.receipt import Receipt
from ledger.verify import b64url_encode


def append(
    conn: psycopg.Connection[Any], source: str, source_id: str, payload: Mapping[str, Any]
) -> bytes:
    """Queue one record for the log; returns its event hash. A repeat of (source, source_id) is a no-op."""
    raw = entry_bytes(source, source_id, payload)
    digest = hashlib.sha256(raw).digest()
    conn.execute(
        "INSERT INTO ledger_entry (source, source_id, entry_json, event_hash) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (source, source_id) DO NOTHING",
        (source, source_id, raw.decode("utf-8"), digest),
    )
    return digest


async def append_async(
    conn: psycopg.AsyncConnection[Any], source: str, source_id: str, payload: Mapping[str, Any]
) -> bytes:
    """``append`` for asyncio callers."""
    raw = entry_bytes(source, source_id, payload)
    digest = hashlib.sha256(raw).digest()
    await conn.execute(
        "INSERT INTO ledger_entry (source, source_id, entry_json, event_hash) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (source, source_id) DO NOTHING",
        (source, source_id, raw.decode("utf-8"), digest),
    )
    return digest


_NEW_DEVICE_EVENTS = """
SELECT e.device_id, e.event_id, (extract(epoch FROM e.time) * 1000)::bigint AS t_ms,
       e.type, e.data, e.sig, d.public_key
FROM device_event e
LEFT JOIN device d ON d.device_id = e.device_id
WHERE e.verified
  AND NOT EXISTS (SELECT 1 FROM ledger_entry l
                  WHERE l.source = 'device_event' AND l.source_id = e.event_id)
ORDER BY e.received_at, e.device_id, e.seq, e.idx
LIMIT %s
"""


def ingest_device_events(conn: psycopg.Connection[Any], limit: int = 10_000) -> int:
    """Copy verified device events not yet in the ledger into it; returns how many."""
    rows = conn.execute(_NEW_DEVICE_EVENTS, (limit,)).fetchall()
    for device_id, event_id, t_ms, type_, data, sig, public_key in rows:
        payload = device_event_payload(device_id, event_id, int(t_ms), type_, data, sig)
        payload["public_key"] = b64url_encode(bytes(public_key)) if public_key is not None else None
        append(conn, DEVICE_EVENT_SOURCE, event_id, payload)
    return len(rows)


def sealed_leaf_hashes(conn: psycopg.Connection[Any]) -> list[bytes]:
    """Every event hash in the log, in leaf order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT event_hash FROM ledger_entry WHERE leaf_index IS NOT NULL ORDER BY leaf_index"
        )
        return [bytes(r[0]) for r in cur]


def unsealed_stats(conn: psycopg.Connection[Any]) -> tuple[int, float | None]:
    """(number of entries waiting, age in seconds of the oldest)."""
    row = conn.execute(
        "SELECT count(*), extract(epoch FROM now() - min(appended_at))::float8 "
        "FROM ledger_entry WHERE leaf_index IS NULL"
    ).fetchone()
    assert row is not None
    return int(row[0]), (None if row[1] is None else float(row[1]))


def take_unsealed(conn: psycopg.Connection[Any], limit: int) -> list[tuple[int, bytes]]:
    """Lock the oldest waiting entries: (entry_id, event_hash) in append order."""
    rows = conn.execute(
        "SELECT entry_id, event_hash FROM ledger_entry WHERE leaf_index IS NULL "
        "ORDER BY entry_id LIMIT %s FOR UPDATE",
        (limit,),
    ).fetchall()
    return [(int(r[0]), bytes(r[1])) for r in rows]


def record_batch(
    conn: psycopg.Connection[Any], entry_ids: Sequence[int], first_index: int, root: bytes
) -> int:
    """Give the entries leaf indexes first_index.. in order and record the checkpoint."""
    tree_size = first_index + len(entry_ids)
    row = conn.execute(
        "INSERT INTO ledger_batch (first_index, tree_size, root) VALUES (%s, %s, %s) RETURNING batch_id",
        (first_index, tree_size, root),
    ).fetchone()
    assert row is not None
    batch_id = int(row[0])
    conn.execute(
        "UPDATE ledger_entry e SET leaf_index = %s + v.ord - 1, batch_id = %s "
        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS v(entry_id, ord) WHERE e.entry_id = v.entry_id",
        (first_index, batch_id, list(entry_ids)),
    )
    return batch_id


@dataclass(frozen=True, slots=True)
class BatchRow:
    batch_id: int
    first_index: int
    tree_size: int
    root: bytes
    status: str
    tx_hash: str | None
    tx_hashes: tuple[str, ...]
    nonce: int | None
    gas: int | None
    max_fee_wei: int | None
    priority_fee_wei: int | None
    sent_age_s: float | None
    block_number: int | None
    block_hash: str | None
    attempts: int


_BATCH_COLS = (
    "batch_id, first_index, tree_size, root, status, tx_hash, tx_hashes, nonce, gas, max_fee_wei, "
    "priority_fee_wei, extract(epoch FROM now() - sent_at)::float8 AS sent_age_s, block_number, "
    "block_hash, attempts"
)


def _batch(row: Mapping[str, Any]) -> BatchRow:
    return BatchRow(
        batch_id=int(row["batch_id"]),
        first_index=int(row["first_index"]),
        tree_size=int(row["tree_size"]),
        root=bytes(row["root"]),
        status=str(row["status"]),
        tx_hash=row["tx_hash"],
        tx_hashes=tuple(row["tx_hashes"] or ()),
        nonce=row["nonce"],
        gas=row["gas"],
        max_fee_wei=None if row["max_fee_wei"] is None else int(row["max_fee_wei"]),
        priority_fee_wei=None if row["priority_fee_wei"] is None else int(row["priority_fee_wei"]),
        sent_age_s=row["sent_age_s"],
        block_number=row["block_number"],
        block_hash=row["block_hash"],
        attempts=int(row["attempts"]),
    )


def open_batches(conn: psycopg.Connection[Any]) -> list[BatchRow]:
    """Batches not yet anchored (sealed, sent or mined), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_BATCH_COLS} FROM ledger_batch "
            "WHERE status IN ('sealed', 'sent', 'mined') ORDER BY batch_id"
        )
        return [_batch(r) for r in cur.fetchall()]


def recent_anchored(conn: psycopg.Connection[Any], min_block: int) -> list[BatchRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_BATCH_COLS} FROM ledger_batch "
            "WHERE status = 'anchored' AND block_number >= %s ORDER BY batch_id",
            (min_block,),
        )
        return [_batch(r) for r in cur.fetchall()]


def update_batch(conn: psycopg.Connection[Any], batch_id: int, **fields: Any) -> None:
    allowed = {
        "status",
        "chain_id",
        "contract_address",
        "sender",
        "tx_hash",
        "nonce",
        "gas",
        "max_fee_wei",
        "priority_fee_wei",
        "block_number",
        "block_hash",
        "gas_used",
        "attempts",
        "last_error",
    }
    bad = set(fields) - allowed
    if bad:
        raise ValueError(f"update_batch: unknown fields {sorted(bad)}")
    sets = [f"{k} = %s" for k in fields]
    values: list[Any] = list(fields.values())
    if "tx_hash" in fields and fields["tx_hash"] is not None:
        sets.append("tx_hashes = array_append(tx_hashes, %s)")
        values.append(fields["tx_hash"])
        sets.append("sent_at = now()")
    if fields.get("status") == "anchored":
        sets.append("anchored_at = now()")
    if fields.get("status") == "sealed":
        sets.append("tx_hashes = '{}'")
    conn.execute(
        f"UPDATE ledger_batch SET {', '.join(sets)} WHERE batch_id = %s", [*values, batch_id]
    )


def receipted_upto(conn: psycopg.Connection[Any]) -> int:
    """Leaves [0, n) already have receipts (receipts are written in leaf order)."""
    row = conn.execute("SELECT coalesce(max(leaf_index) + 1, 0) FROM ledger_receipt").fetchone()
    assert row is not None
    return int(row[0])


def write_receipts(
    conn: psycopg.Connection[Any], batch_id: int, paths: Iterable[tuple[int, bytes]]
) -> int:
    n = 0
    with (
        conn.cursor() as cur,
        cur.copy("COPY ledger_receipt (leaf_index, batch_id, path) FROM STDIN") as copy,
    ):
        for leaf_index, path in paths:
            copy.write_row((leaf_index, batch_id, path))
            n += 1
    return n


def leaves_without_receipt(conn: psycopg.Connection[Any], tree_size: int) -> list[int]:
    """Leaf indexes below ``tree_size`` that have no receipt yet, in order."""
    rows = conn.execute(
        "SELECT e.leaf_index FROM ledger_entry e WHERE e.leaf_index < %s AND NOT EXISTS "
        "(SELECT 1 FROM ledger_receipt r WHERE r.leaf_index = e.leaf_index) ORDER BY 1",
        (tree_size,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def drop_receipts(conn: psycopg.Connection[Any], batch_id: int) -> None:
    conn.execute("DELETE FROM ledger_receipt WHERE batch_id = %s", (batch_id,))


def supersede_older(conn: psycopg.Connection[Any], batch_id: int) -> None:
    """Sealed batches older than an anchored one need no transaction of their own."""
    conn.execute(
        "UPDATE ledger_batch SET status = 'superseded', covered_by = %s "
        "WHERE batch_id < %s AND status = 'sealed'",
        (batch_id, batch_id),
    )


def registry_address(conn: psycopg.Connection[Any], chain_id: int) -> str | None:
    row = conn.execute(
        "SELECT contract_address FROM ledger_registry WHERE chain_id = %s", (chain_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def save_registry(conn: psycopg.Connection[Any], chain_id: int, address: str) -> None:
    conn.execute(
        "INSERT INTO ledger_registry (chain_id, contract_address) VALUES (%s, %s) "
        "ON CONFLICT (chain_id) DO UPDATE SET contract_address = EXCLUDED.contract_address",
        (chain_id, address),
    )


_RECEIPT_SQL = """
SELECT e.entry_json, e.event_hash, e.leaf_index, r.path, b.tree_size, b.root, b.chain_id,
       b.contract_address, b.sender, b.tx_hash, b.block_number, e.source
FROM ledger_entry e
JOIN ledger_receipt r ON r.leaf_index = e.leaf_index
JOIN ledger_batch b ON b.batch_id = r.batch_id
WHERE e.source_id = %s AND (%s::text IS NULL OR e.source = %s)
"""


def receipt_from_row(row: Sequence[Any]) -> Receipt:
    raw_path = bytes(row[3])
    return Receipt(
        entry=json.loads(row[0]),
        event_hash=bytes(row[1]),
        leaf_index=int(row[2]),
        tree_size=int(row[4]),
        inclusion_path=tuple(raw_path[i : i + 32] for i in range(0, len(raw_path), 32)),
        root=bytes(row[5]),
        chain_id=int(row[6]),
        contract_address=str(row[7]),
        anchor_sender=str(row[8]),
        tx_hash=row[9],
        block_number=row[10],
    )


def receipt_for(
    conn: psycopg.Connection[Any], source_id: str, source: str | None = None
) -> Receipt | None:
    row = conn.execute(_RECEIPT_SQL, (source_id, source, source)).fetchone()
    return None if row is None else receipt_from_row(row)


async def receipt_for_async(
    conn: psycopg.AsyncConnection[Any], source_id: str, source: str | None = None
) -> Receipt | None:
    cur = await conn.execute(_RECEIPT_SQL, (source_id, source, source))
    row = await cur.fetchone()
    return None if row is None else receipt_from_row(row)
