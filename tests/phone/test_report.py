"""The signed service report: customer signature -> PDF (work done, parts, times, photos,
signature) -> the phone's ES256 signature and the rep's Ed25519 one -> the ledger, anchored
on a real node (anvil) -> `fieldmesh verify RECEIPT --document report.pdf`: valid, and
invalid after one changed byte."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from PIL import Image

from fieldmesh.cli import main as fieldmesh_main
from kernel.settings import Settings
from ledger.anvil import DEV_KEYS, AnvilNode
from ledger.chain import Chain
from ledger.config import LedgerConfig
from ledger.documents import check_signatures
from ledger.service import Sealer
from tests.appserver import serve_app
from tests.console.conftest import make_user
from tests.world import People


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def webcrypto_sign(key: ec.EllipticCurvePrivateKey, msg: bytes) -> bytes:
    """What `crypto.subtle.sign({name: 'ECDSA', hash: 'SHA-256'})` gives: r||s, 64 bytes."""
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _png() -> bytes:
    img = Image.new("RGB", (600, 140), "white")
    for x in range(50, 550):
        img.putpixel((x, 70 + (x % 40) - 20), (0, 0, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_a_signed_report_verifies_and_fails_after_one_byte_changes(
    app_url: str,
    people: People,
    db_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    test_settings: Settings,
    run_phone: Callable[..., dict[str, Any]],
) -> None:
    rep = people.api(app_url, "rep1")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id, address) VALUES (%s, 'customer', %s,"
            " '1 Pump Road') RETURNING id",
            (f"Report Co {uuid.uuid4().hex[:6]}", people.t1),
        ).fetchone()
        assert acct is not None
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status, source)"
            " VALUES (%s, 'Replace seal', %s, %s, 'in_progress', 'alert') RETURNING id",
            (acct[0], people.t1, people.users["rep1"]),
        ).fetchone()
        assert wo is not None
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    phone = rep.post("/phone/devices", json={"label": "test phone", "public_key": b64u(pub)})
    assert phone.status_code == 201, phone.text
    device_id = phone.json()["device_id"]
    day = rep.get("/phone/day").json()
    stop = next(s for s in day["stops"] if s["work_order"] and s["work_order"]["id"] == wo[0])
    path = f"/phone/day/stops/{stop['key']}?date={day['date']}"
    rep.post(path, json={"checkin_at": "2026-12-07T09:00:00+00:00"})
    rep.post(
        path,
        json={
            "checkout_at": "2026-12-07T10:10:00+00:00",
            "parts": [{"name": "Mechanical seal 40 mm", "qty": 1}],
            "checklist": {stop["checklist"][0]["item"]: True},
        },
    )
    r = rep.post(
        "/phone/reports",
        json={
            "work_order_id": wo[0],
            "signer_name": "Ms Customer",
            "signature_png": base64.b64encode(_png()).decode(),
        },
        headers={"Idempotency-Key": "rep-1"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    again = rep.post(
        "/phone/reports",
        json={
            "work_order_id": wo[0],
            "signer_name": "Ms Customer",
            "signature_png": base64.b64encode(_png()).decode(),
        },
        headers={"Idempotency-Key": "rep-1"},
    )
    assert again.json()["id"] == created["id"]
    bad_png = rep.post(
        "/phone/reports",
        json={
            "work_order_id": wo[0],
            "signer_name": "X",
            "signature_png": base64.b64encode(b"GIF89a").decode(),
        },
    )
    assert bad_png.status_code == 422
    msg = base64.urlsafe_b64decode(created["message"] + "==")
    forged = rep.post(
        f"/phone/reports/{created['id']}/sign",
        json={"device_id": device_id, "signature": b64u(webcrypto_sign(key, msg + b"x"))},
    )
    assert forged.status_code == 422
    signed = rep.post(
        f"/phone/reports/{created['id']}/sign",
        json={"device_id": device_id, "signature": b64u(webcrypto_sign(key, msg))},
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "signed"
    assert signed.json()["verify_url"] == f"/verify#sha256={created['sha256']}"
    # the public page's API: signed, the anchor still pending
    public = requests.get(f"{app_url}/api/v1/public/documents/{created['sha256']}", timeout=10)
    assert public.status_code == 409 and public.json()["error"]["code"] == "not_anchored"
    pdf = rep.get(signed.json()["pdf_url"].removeprefix("/api/v1"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert b"Mechanical seal 40 mm" in pdf.content or len(pdf.content) > 2000
    # another territory's rep cannot see it
    assert people.api(app_url, "rep2").get(f"/phone/reports/{created['id']}").status_code == 404

    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        config = LedgerConfig(batch_size=1, batch_interval_s=0.0, sender_key=DEV_KEYS[0])
        with Sealer(db_dsn, config, lambda: chain) as sealer:
            for _ in range(4):
                sealer.tick(force_seal=True)
        out = rep.get(f"/phone/reports/{created['id']}").json()
        assert out["receipt"] is not None, out
        # anyone holding the PDF: its hash finds the receipt; the server checks the anchor on
        # the node it is configured with, signatures included; a changed byte finds nothing
        with serve_app(test_settings.with_overrides(evm_rpc_url=node.url), job_modules=()) as u:
            doc = requests.get(f"{u}/api/v1/public/documents/{created['sha256']}", timeout=20)
            assert doc.status_code == 200, doc.text
            got = doc.json()
            assert got["verdict"]["ok"] and got["verdict"]["code"] == "valid", got
            assert got["verdict"]["chain_checked"] is True
            assert any(s.startswith("rep:") for s in got["signers"])
            assert any(s.startswith("device:") for s in got["signers"])
            assert got["receipt"] == out["receipt"]
            other = hashlib.sha256(pdf.content + b"\n").hexdigest()
            assert (
                requests.get(f"{u}/api/v1/public/documents/{other}", timeout=10).status_code == 404
            )
            bad = requests.get(f"{u}/api/v1/public/documents/NOT-HEX", timeout=10)
            assert bad.status_code in (400, 404, 422) and "error" in bad.json()
            page = requests.get(f"{u}/verify", timeout=10)
            assert page.status_code == 200 and "not uploaded" in page.text
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            # in Chromium: the PDF as received verifies, one changed byte does not, and
            # no file leaves the browser (only GETs of the hash)
            good_pdf = tmp_path / "as-received.pdf"
            good_pdf.write_bytes(pdf.content)
            changed = bytearray(pdf.content)
            changed[len(changed) // 3] ^= 0x20
            bad_pdf = tmp_path / "changed.pdf"
            bad_pdf.write_bytes(bytes(changed))
            seen = run_phone(
                "verifyPage", u, {"files": {"good": str(good_pdf), "changed": str(bad_pdf)}}
            )
            assert seen["errors"] == [] and seen["uploads"] == [], seen
            assert seen["good"]["cls"] == "ok" and "Verified" in seen["good"]["headline"]
            assert any(
                "Inclusion proof checked in your browser" in s for s in seen["good"]["steps"]
            )
            assert seen["good"]["receiptLink"] is True
            assert seen["changed"]["cls"] == "bad"
            assert "no signed document" in seen["changed"]["headline"]
        offline = requests.get(f"{app_url}/api/v1/public/documents/{created['sha256']}", timeout=10)
        assert offline.json()["verdict"]["code"] == "valid_offline"
        assert offline.json()["verdict"]["chain_checked"] is False
        receipt = tmp_path / "receipt.json"
        receipt.write_text(json.dumps(out["receipt"]))
        report = tmp_path / "report.pdf"
        report.write_bytes(pdf.content)
        capsys.readouterr()
        assert (
            fieldmesh_main(
                ["verify", str(receipt), "--rpc-url", node.url, "--document", str(report)]
            )
            == 0
        )
        text = capsys.readouterr().out
        assert "VALID" in text and "rep:" in text and "device:" in text
        tampered = bytearray(pdf.content)
        tampered[len(tampered) // 2] ^= 0x01
        report.write_bytes(bytes(tampered))
        assert (
            fieldmesh_main(
                ["verify", str(receipt), "--rpc-url", node.url, "--document", str(report)]
            )
            == 1
        )
        assert "document_mismatch" in capsys.readouterr().out


def test_the_customer_signs_on_the_phone_and_the_report_is_signed_by_the_phone(
    phone_app: str, phone_settings: Settings, run_phone: Callable[..., dict[str, Any]]
) -> None:
    dsn = phone_settings.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id",
            (f"sig-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        assert t is not None
        rep = make_user(dsn, "rep", territory_id=int(t[0]))
        acct = conn.execute(
            "INSERT INTO accounts (name, type, territory_id, location) VALUES ('Signing Co',"
            " 'customer', %s, ST_MakePoint(4.85, 45.76)::geography) RETURNING id",
            (t[0],),
        ).fetchone()
        assert acct is not None
        wo = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status)"
            " VALUES (%s, 'Annual service', %s, %s, 'assigned') RETURNING id",
            (acct[0], t[0], rep["id"]),
        ).fetchone()
        assert wo is not None
    r = run_phone("report", phone_app, {"user": rep})
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT r.id, r.status, r.signer_name, d.user_id, w.status, l.entry_json"
            " FROM phone_reports r JOIN phone_devices d ON d.device_id = r.device_id"
            " JOIN work_orders w ON w.id = r.work_order_id"
            " JOIN ledger_entry l ON l.source = 'service_report' AND l.source_id = r.ledger_source_id"
            " WHERE r.work_order_id = %s",
            (wo[0],),
        ).fetchone()
    assert row is not None and str(row[0]) == r["report"]
    assert row[1:5] == ("signed", "Ms Customer", rep["id"], "done")
    entry = json.loads(row[5])
    assert [s["alg"] for s in entry["payload"]["signatures"]] == ["Ed25519", "ES256"]
    assert check_signatures(entry).ok
    assert r["errors"] == []
