"""Customer signature and the signed service report.

1. `create`: the customer's signature (PNG from the phone's signature pad, checked by
   content) and the work order's facts -- check-in/out, checklist, parts, notes, photos --
   become a PDF (phone/reportpdf.py), kept as an attachment of the work order.
2. `sign`: the phone signs the report's hash with its own key (ES256, WebCrypto, the public
   key registered with the phone); the server checks it, adds the rep's signature (an
   Ed25519 key per rep derived from the deployment's master key) and appends the entry
   `service_report` to the ledger (ledger.store), which the sealer anchors on chain.
   Verification needs only the PDF and its receipt: `fieldmesh verify RECEIPT --document
   report.pdf` (ledger/documents.py).

E-mail to the customer: `ReportHooks.report_signed` is called in the signing transaction;
phone/report_mail.py (engage's outbox) is the hook phone's routes plug in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from kernel.broker import master_key
from kernel.errors import NotFound, Unprocessable
from kernel.principal import Principal
from kernel.settings import Settings
from ledger.documents import message, verify_signature
from ledger.store import append_async
from phone import attachments, dayrepo
from phone.day import stop_key
from phone.media import Stored
from phone.reportpdf import ReportFacts, build_pdf

LEDGER_SOURCE = "service_report"
MAX_SIGNATURE_BYTES = 200_000


class ReportHooks(Protocol):
    async def report_signed(self, conn: AsyncConnection[Any], report_id: int) -> None: ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rep_key(settings: Settings, user_id: int) -> Ed25519PrivateKey:
    seed = hmac.new(master_key(settings), f"rep-signing-key\x00{user_id}".encode(), hashlib.sha256)
    return Ed25519PrivateKey.from_private_bytes(seed.digest())


def document_id(report_id: int) -> str:
    return f"service-report-{report_id}"


async def _facts(
    conn: AsyncConnection[Any], settings: Settings, principal: Principal, wo_id: int
) -> tuple[ReportFacts, int]:
    cur = await conn.execute(
        "SELECT w.title, w.description, w.account_id, a.name, a.address, w.assignee_id"
        " FROM work_orders w JOIN accounts a ON a.id = w.account_id WHERE w.id = %s",
        (wo_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    title, description, account_id, account, address, _assignee = row
    cur = await conn.execute(
        "SELECT checkin_at, checkout_at, checklist, parts, day FROM phone_stop_work"
        " WHERE stop_key = %s ORDER BY day DESC, updated_at DESC LIMIT 1",
        (stop_key(account_id, wo_id),),
    )
    work = await cur.fetchone()
    checklist: list[tuple[str, bool]] = []
    parts: list[tuple[str, float]] = []
    cin = cout = None
    if work is not None:
        cin, cout = work[0], work[1]
        _, stops = await dayrepo.load_day(conn, principal.user_id, work[4])
        stop = next((s for s in stops if s.work_order_id == wo_id), None)
        if stop is not None:
            checklist = [(c["item"], c["done"]) for c in stop.extra["checklist"]]
            cin = cin or stop.extra["checkin_at"]
            cout = cout or stop.extra["checkout_at"]
        parts = [(str(p.get("name")), float(p.get("qty", 1))) for p in work[3]]
    cur = await conn.execute(
        "SELECT body FROM activities WHERE work_order_id = %s AND type = 'note'"
        " AND subject = 'Visit note' ORDER BY id LIMIT 20",
        (wo_id,),
    )
    notes = [str(r[0]) for r in await cur.fetchall() if r[0]]
    cur = await conn.execute("SELECT name, email FROM users WHERE id = %s", (principal.user_id,))
    who = await cur.fetchone()
    photos = []
    store = attachments.store_for(settings)
    for a in await attachments.visible(conn, principal, work_order_id=wo_id):
        if a.kind == "image" and a.has_thumb:
            thumb = await asyncio.to_thread(store.get, a.sha256, thumb=True)
            if thumb:
                photos.append(thumb)
    facts = ReportFacts(
        report_id=0,
        company=settings.tenant,
        account=str(account),
        address=address,
        work_order_id=wo_id,
        title=str(title),
        description=description,
        rep=str(who[0] or who[1]) if who else str(principal.email),
        checkin_at=cin,
        checkout_at=cout,
        checklist=checklist,
        parts=parts,
        notes=notes,
        photos=photos,
    )
    return facts, int(account_id)


async def create(
    conn: AsyncConnection[Any],
    settings: Settings,
    principal: Principal,
    *,
    work_order_id: int,
    signer_name: str,
    signature_png: bytes,
    client_key: str,
    customer_email: str | None = None,
) -> tuple[int, str]:
    """(report id, sha256) of the new report (the same client key gives the first one)."""
    principal.require_write()
    account_id, _ = await attachments.target(conn, principal, None, work_order_id)
    prior = await attachments.existing(conn, principal.user_id, f"report:{client_key}")
    if prior is not None:
        cur = await conn.execute(
            "SELECT id, sha256 FROM phone_reports WHERE attachment_id = %s", (prior.id,)
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
    if (
        not signature_png.startswith(b"\x89PNG\r\n\x1a\n")
        or len(signature_png) > MAX_SIGNATURE_BYTES
    ):
        raise Unprocessable("signature_png: a PNG image of at most 200 kB", field="signature_png")
    sig_stored = Stored(
        signature_png,
        hashlib.sha256(signature_png).hexdigest(),
        "image/png",
        "signature",
        None,
        None,
        None,
    )
    facts, _ = await _facts(conn, settings, principal, work_order_id)
    cur = await conn.execute("SELECT nextval(pg_get_serial_sequence('phone_reports', 'id'))")
    seq_row = await cur.fetchone()
    assert seq_row is not None
    report_id = int(seq_row[0])
    now = datetime.now(UTC).replace(microsecond=0)
    facts = ReportFacts(
        **{
            **{k: getattr(facts, k) for k in facts.__dataclass_fields__},
            "report_id": report_id,
            "signature_png": signature_png,
            "signer_name": signer_name,
            "signed_at": now,
        }
    )
    try:
        pdf = await asyncio.to_thread(build_pdf, facts)
    except Exception as exc:  # reportlab refusing the signature image: bad input
        raise Unprocessable(
            f"signature_png: cannot be drawn ({str(exc)[:80]})", field="signature_png"
        ) from None
    sha = hashlib.sha256(pdf).hexdigest()
    # the signature image is kept as sent: its own attachment row (PNG, not re-encoded)
    store = attachments.store_for(settings)
    await asyncio.to_thread(store.put, sig_stored.sha256, signature_png)
    pdf_att = await attachments.save(
        conn,
        settings,
        principal,
        account_id=account_id,
        work_order_id=work_order_id,
        filename=f"service-report-{report_id}.pdf",
        client_key=f"report:{client_key}",
        stored=Stored(pdf, sha, "application/pdf", "report", None, None, None),
        kind="report",
        source="service_report",  # made by the server, not an action of the rep
    )
    await conn.execute(
        "INSERT INTO phone_reports (id, work_order_id, account_id, rep_id, attachment_id, sha256,"
        " signer_name, customer_email) OVERRIDING SYSTEM VALUE"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            report_id,
            work_order_id,
            account_id,
            principal.user_id,
            pdf_att.id,
            sha,
            signer_name,
            customer_email,
        ),
    )
    return report_id, sha


async def sign(
    conn: AsyncConnection[Any],
    settings: Settings,
    principal: Principal,
    report_id: int,
    *,
    device_id: str,
    device_sig: bytes,
    hooks: ReportHooks | None = None,
) -> str:
    """Check the phone's signature, add the rep's, append the ledger entry; its source id."""
    cur = await conn.execute(
        "SELECT r.work_order_id, r.account_id, r.sha256, r.status, r.ledger_source_id, r.rep_id"
        " FROM phone_reports r WHERE r.id = %s FOR UPDATE",
        (report_id,),
    )
    row = await cur.fetchone()
    if row is None or row[5] != principal.user_id:
        raise NotFound(f"no report {report_id}")
    wo_id, account_id, sha, status, source_id, _ = row
    if status == "signed":
        return str(source_id)
    cur = await conn.execute(
        "SELECT public_key FROM phone_devices WHERE device_id = %s AND user_id = %s AND revoked_at IS NULL",
        (device_id, principal.user_id),
    )
    dev = await cur.fetchone()
    if dev is None or dev[0] is None:
        raise NotFound(f"phone {device_id[:80]!r} has no signing key", field="device_id")
    doc_id = document_id(report_id)
    msg = message(doc_id, sha)
    if not verify_signature("ES256", bytes(dev[0]), device_sig, msg):
        raise Unprocessable("signature: does not verify with the phone's key", field="signature")
    rep = rep_key(settings, principal.user_id)
    rep_pub = rep.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    payload = {
        "document_id": doc_id,
        "document_sha256": sha,
        "media_type": "application/pdf",
        "work_order_id": wo_id,
        "account_id": account_id,
        "rep_id": principal.user_id,
        "device_id": device_id,
        "signatures": [
            {
                "by": f"rep:{principal.user_id}",
                "alg": "Ed25519",
                "public_key": b64url(rep_pub),
                "sig": b64url(rep.sign(msg)),
            },
            {
                "by": f"device:{device_id}",
                "alg": "ES256",
                "public_key": b64url(bytes(dev[0])),
                "sig": b64url(device_sig),
            },
        ],
    }
    source_id = f"report:{report_id}"
    await append_async(conn, LEDGER_SOURCE, source_id, payload)
    await conn.execute(
        "UPDATE phone_reports SET status = 'signed', device_id = %s, ledger_source_id = %s,"
        " signed_at = now() WHERE id = %s",
        (device_id, source_id, report_id),
    )
    if hooks is not None:
        await hooks.report_signed(conn, report_id)
    return source_id


async def get(conn: AsyncConnection[Any], principal: Principal, report_id: int) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT id, work_order_id, account_id, attachment_id, sha256, status, ledger_source_id,"
        " signer_name, created_at, signed_at, email_state FROM phone_reports WHERE id = %s",
        (report_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no report {report_id}")
    if not await attachments.visible(conn, principal, attachment_id=int(row[3])):
        raise NotFound(f"no report {report_id}")
    keys = (
        "id",
        "work_order_id",
        "account_id",
        "attachment_id",
        "sha256",
        "status",
        "ledger_source_id",
        "signer_name",
        "created_at",
        "signed_at",
        "email_state",
    )
    return dict(zip(keys, row, strict=True))
