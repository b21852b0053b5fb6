"""Creating requests run once per `Idempotency-Key`.

A repeat with the same key and the same request gets the stored response with
`Idempotent-Replayed: true`; the same key with another request is a 422. The key is
claimed in the same transaction as the work, so a failed request leaves the key free.
The request is identified by its method, path and query, and its decoded body (so two
encodings of the same JSON are the same request).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from crm.errors import CrmError
from kernel.http import Reply, Req, encode_json

Conn = AsyncConnection[Any]
Work = Callable[[Conn], Awaitable[Reply[Any]]]
REPLAYED = "Idempotent-Replayed"


def _digest(req: Req, body: Any) -> str:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    request = req.request
    return hashlib.sha256(
        b"\n".join([request.method.encode(), request.path_qs.encode(), raw])
    ).hexdigest()


async def idempotent(req: Req, body: Any, run: Work) -> Reply[Any]:
    """Run `run` in a transaction, once per Idempotency-Key of the caller."""
    key = req.header("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise CrmError(
            "Idempotency-Key must have 1 to 200 characters", field="Idempotency-Key", status=400
        )
    user_id = req.user.user_id
    async with req.connection() as conn, conn.transaction():
        if key is None:
            return await run(conn)
        digest = _digest(req, body)
        cur = await conn.execute(
            "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (user_id, key, req.request.method, req.request.path, digest),
        )
        if await cur.fetchone() is None:
            dcur = conn.cursor(row_factory=dict_row)
            await dcur.execute(
                "SELECT request_hash, status, response FROM idempotency_keys"
                " WHERE user_id = %s AND key = %s",
                (user_id, key),
            )
            prior = await dcur.fetchone()
            if prior is None or prior["request_hash"] != digest:
                raise CrmError(
                    "this Idempotency-Key was used for another request",
                    field="Idempotency-Key",
                    status=422,
                    code="idempotency_key_reused",
                )
            stored = prior["response"] or {}
            return Reply(
                stored.get("body"),
                status=prior["status"] or 200,
                headers={**stored.get("headers", {}), REPLAYED: "true"},
            )
        reply = await run(conn)
        stored_body = msgspec.json.decode(encode_json(reply.data))
        await conn.execute(
            "UPDATE idempotency_keys SET status = %s, response = %s::jsonb"
            " WHERE user_id = %s AND key = %s",
            (
                reply.status or 200,
                encode_json({"body": stored_body, "headers": reply.headers or {}}).decode(),
                user_id,
                key,
            ),
        )
        return reply


def replayed(reply: Reply[Any]) -> bool:
    return (reply.headers or {}).get(REPLAYED) == "true"
