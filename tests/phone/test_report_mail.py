"""The signed service report reaches the customer by e-mail through engage (the embedded
SMTP relay and Dovecot): the PDF that was anchored, and the public verification link; a
report on an account without any address is signed all the same and says why no e-mail."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg import AsyncConnection

from engage import send
from identity import auth
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, make_world, send_worker
from tests.engage.test_send import inbox
from tests.eventually import eventually_async
from tests.phone.test_report import _png, b64u, webcrypto_sign
from tests.world import Api, People


@pytest.fixture
def mail_world(db_dsn: str, test_settings: Settings, people: People) -> MailWorld:
    """engage's world: a rep with a mailbox, an account whose primary contact Ann Lee has a
    real Dovecot mailbox."""
    return asyncio.run(make_world(db_dsn, test_settings, people))


def _rep_api(app_url: str, db_dsn: str, user_id: int) -> Api:
    async def token() -> str:
        async with await AsyncConnection.connect(db_dsn) as conn:
            t = (await auth.issue_token(conn, user_id, "test"))[1]
            await conn.commit()
            return t

    return Api(app_url, asyncio.run(token()))


def _signed_report(
    rep: Api, db_dsn: str, account_id: int, rep_id: int, territory_id: int, **extra: str
) -> dict[str, object]:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status)"
            " VALUES (%s, 'Replace seal', %s, %s, 'in_progress') RETURNING id",
            (account_id, territory_id, rep_id),
        ).fetchone()
        assert wo is not None
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    phone = rep.post("/phone/devices", json={"label": "phone", "public_key": b64u(pub)})
    assert phone.status_code == 201, phone.text
    created = rep.post(
        "/phone/reports",
        json={
            "work_order_id": wo[0],
            "signer_name": "Ann Lee",
            "signature_png": base64.b64encode(_png()).decode(),
            **extra,
        },
    )
    assert created.status_code == 201, created.text
    msg = base64.urlsafe_b64decode(created.json()["message"] + "==")
    signed = rep.post(
        f"/phone/reports/{created.json()['id']}/sign",
        json={"device_id": phone.json()["device_id"], "signature": b64u(webcrypto_sign(key, msg))},
    )
    assert signed.status_code == 200, signed.text
    out: dict[str, object] = signed.json()
    return out


def test_the_signed_report_is_emailed_to_the_customer_with_its_verification_link(
    app_url: str, db_dsn: str, test_settings: Settings, mail_world: MailWorld, people: People
) -> None:
    w = mail_world
    rep = _rep_api(app_url, db_dsn, w.rep_id)
    report = _signed_report(rep, db_dsn, w.account_id, w.rep_id, people.t1)
    assert report["status"] == "signed" and report["email_state"] == "queued", report
    with psycopg.connect(db_dsn) as conn:
        row = conn.execute(
            "SELECT email_outbox_id FROM phone_reports WHERE id = %s", (report["id"],)
        ).fetchone()
        assert row is not None and row[0] is not None
        outbox_id = int(row[0])

    async def deliver() -> None:
        async with await AsyncConnection.connect(db_dsn) as conn, send_worker(test_settings):

            async def sent() -> bool:
                st = await send.outbox_state(conn, outbox_id)
                return st is not None and st["state"] == "sent"

            await eventually_async(sent, what="the report's e-mail sent")

    asyncio.run(deliver())
    msgs = inbox(test_settings, w.contact_address, w.contact_password)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["Subject"] == "Your service report: Replace seal"
    pdfs = [p for p in m.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert [p.get_filename() for p in pdfs] == [f"service-report-{report['id']}.pdf"]
    data = pdfs[0].get_content()
    assert hashlib.sha256(data).hexdigest() == report["sha256"]  # the anchored bytes
    html = m.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert f"/verify#sha256={report['sha256']}" in html


def test_a_report_without_any_address_is_signed_and_says_why_nothing_was_sent(
    app_url: str, db_dsn: str, mail_world: MailWorld, people: People
) -> None:
    w = mail_world
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        bare = conn.execute(
            "INSERT INTO accounts (name, type, territory_id, owner_id) VALUES (%s, 'customer',"
            " %s, %s) RETURNING id",
            (f"No Mail Co {uuid.uuid4().hex[:6]}", people.t1, w.rep_id),
        ).fetchone()
        assert bare is not None
    rep = _rep_api(app_url, db_dsn, w.rep_id)
    report = _signed_report(rep, db_dsn, int(bare[0]), w.rep_id, people.t1)
    assert report["status"] == "signed" and report["email_state"] == "no_address"
    # an address given at signing is used, and a malformed one is refused up front
    bad = rep.post(
        "/phone/reports",
        json={
            "work_order_id": 1,
            "signer_name": "X",
            "signature_png": base64.b64encode(_png()).decode(),
            "customer_email": "not an address",
        },
    )
    assert bad.status_code == 422 and "customer_email" in bad.text
    given = _signed_report(
        rep, db_dsn, int(bare[0]), w.rep_id, people.t1, customer_email="ops@nomail.test"
    )
    assert given["email_state"] == "queued"
