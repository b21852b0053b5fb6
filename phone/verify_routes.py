"""The public verification page of signed documents (service reports).

Whoever holds a report -- the customer, an auditor -- opens `/verify`, drops the PDF in,
and the browser computes its SHA-256 (the file never leaves the machine). The page asks
`GET /api/v1/public/documents/{sha256}` for the ledger receipt of that hash, checks the
receipt's Merkle inclusion path itself (RFC 6962, in the browser), shows the server's
check of the signatures and of the anchor on the chain, and offers the receipt for
`fieldmesh verify RECEIPT --document FILE --rpc-url <any node>`, which trusts fieldmesh
in nothing.

Public by design: the path is the document's hash, which only a holder of the document can
compute (256 bits: not guessable, not enumerable), and the answer tells that holder only
what the document itself shows plus the anchor, which is public on the chain anyway.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web

from kernel.errors import Conflict, NotFound
from kernel.http import Access, Req, Routes
from kernel.pages import page_headers
from kernel.settings import Settings
from ledger.chain import Chain
from ledger.documents import check_signatures
from ledger.errors import LedgerError
from ledger.receipt import Receipt, Verdict, check_offline, verify_receipt
from ledger.store import receipt_for_async

routes = Routes("verify", "Public verification of signed documents (service reports)")
STATIC = Path(__file__).with_name("static")
_PUBLIC = (
    "the path is a document's SHA-256, which only a holder of the document can compute; the "
    "answer holds what the document shows plus its anchor, public on the chain anyway"
)
CHAIN_TIMEOUT_S = 10.0


def verify_path(sha256: str) -> str:
    """The page with the hash filled in (a fragment: never sent to a server in a Referer)."""
    return f"/verify#sha256={sha256}"


class DocumentPath(msgspec.Struct, frozen=True):
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class DocumentVerdict(msgspec.Struct, frozen=True):
    ok: bool
    code: str
    message: str
    chain_checked: bool  # False: no node configured here; check it with `fieldmesh verify`


class PublicDocumentOut(msgspec.Struct, frozen=True):
    sha256: str
    document_id: str
    kind: str
    signed_at: datetime | None
    signers: list[str]
    verdict: DocumentVerdict
    receipt: dict[str, Any]
    verify_command: str


@lru_cache(maxsize=4)
def _chain(rpc_url: str) -> Chain:
    """One client per node for the process: a public page must not re-read the registry's
    ABI and open a new HTTP session on every request."""
    return Chain.connect(rpc_url, CHAIN_TIMEOUT_S)


def _chain_verdict(settings: Settings, receipt: Receipt) -> tuple[Verdict, bool]:
    """Against the node in EVM_RPC_URL when there is one; else the offline checks only (an
    in-process chain lives in the sealer, not here)."""
    if settings.evm_rpc_url is None:
        return check_offline(receipt), False
    try:
        return verify_receipt(receipt, _chain(settings.evm_rpc_url)), True
    except LedgerError as exc:
        off = check_offline(receipt)
        if not off.ok:
            return off, False
        return Verdict(
            True, "valid_offline", f"{off.message}; the chain did not answer ({exc})"
        ), False


@routes.get(
    "/api/v1/public/documents/{sha256}",
    access=Access.public(_PUBLIC),
    summary="The anchored receipt and verdict of a signed document, by its SHA-256",
    description="404: no signed document has this hash (one changed byte gives another "
    "hash). 409 `not_anchored`: signed, its anchor transaction is still pending.",
    errors=(404, 409),
)
async def public_document(req: Req, path: DocumentPath) -> PublicDocumentOut:
    async with req.read_connection() as conn:
        cur = await conn.execute(
            "SELECT id, ledger_source_id, signed_at FROM phone_reports"
            " WHERE sha256 = %s AND status = 'signed' ORDER BY id LIMIT 1",
            (path.sha256,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound("no signed document has this SHA-256", field="sha256")
        receipt = await receipt_for_async(conn, str(row[1]), "service_report")
    if receipt is None:
        raise Conflict(
            "the document is signed and in the ledger; its anchor is still pending: try again"
            " in a minute",
            code="not_anchored",
        )
    chain, checked = await asyncio.to_thread(_chain_verdict, req.settings, receipt)
    sigs = check_signatures(receipt.entry)
    verdict = chain if not chain.ok else sigs if not sigs.ok else chain
    message = f"{chain.message}; {sigs.message}" if chain.ok and sigs.ok else verdict.message
    payload = receipt.entry.get("payload") or {}
    return PublicDocumentOut(
        sha256=path.sha256,
        document_id=str(payload.get("document_id", "")),
        kind="service_report",
        signed_at=row[2],
        signers=list(sigs.details.get("signers", [])) if sigs.ok else [],
        verdict=DocumentVerdict(verdict.ok, verdict.code, message, checked),
        receipt=receipt.to_json(),
        verify_command="fieldmesh verify receipt.json --document FILE.pdf --rpc-url NODE_URL",
    )


def _csp() -> str:
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data:; base-uri 'none'; form-action 'none'"
    )


@routes.get(
    "/verify",
    access=Access.public("a static page; the document is hashed in the browser, never uploaded"),
    summary="The public page that verifies a signed document (service report)",
    content_type="text/html",
)
async def verify_page(req: Req) -> web.StreamResponse:
    body = await asyncio.to_thread((STATIC / "verify.html").read_bytes)
    headers = page_headers(_csp(), referrer="no-referrer")
    headers["Cache-Control"] = "public, max-age=300"
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=headers)


class VerifyAsset(msgspec.Struct, frozen=True):
    file: Annotated[str, msgspec.Meta(pattern=r"^verify\.(js|css)$")]


@routes.get(
    "/verify/{file}",
    access=Access.public("the verification page's script and style: no data"),
    summary="The verification page's script and style",
    content_type="text/javascript, text/css",
    errors=(404,),
)
async def verify_asset(req: Req, path: VerifyAsset) -> web.StreamResponse:
    file = STATIC / path.file
    if not file.is_file():
        raise NotFound(f"no file {path.file!r}", field="file")
    ctype = "text/javascript" if path.file.endswith(".js") else "text/css"
    return web.Response(
        body=await asyncio.to_thread(file.read_bytes),
        content_type=ctype,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
