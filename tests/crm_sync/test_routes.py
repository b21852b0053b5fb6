"""The crm_sync HTTP API on the real app, with the webhook dispatcher running in it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import psycopg
import pytest
import requests

from crm_sync import webhooks
from crm_sync.signing import HEADER, sign, verify
from identity import auth
from kernel.settings import Settings
from tests.eventually import eventually

from .appserver import serve_app
from .fixtures import LOOPBACK

pytestmark = pytest.mark.integration


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        thread.join(10)


def _wait_for(predicate: Any, limit_s: float = 60.0) -> bool:
    eventually(predicate, timeout_s=limit_s)
    return True


async def _admin_token(dsn: str) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        tag = uuid.uuid4().hex[:8]
        uid = await auth.create_user(conn, email=f"adm-{tag}@x.test", name="Adm", role="admin")
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
        return token


@pytest.fixture(scope="module")
def api(test_settings: Settings, db_dsn: str) -> Iterator[tuple[str, dict[str, str]]]:
    token = asyncio.run(_admin_token(db_dsn))
    # the test receiver listens on loopback: the admin's allow-list must name it
    with serve_app(test_settings.with_overrides(webhook_allow=LOOPBACK)) as base:
        yield base, {"Authorization": f"Bearer {token}"}


def test_subscription_urls_are_checked(api: tuple[str, dict[str, str]]) -> None:
    base, h = api
    for url, msg in (("ftp://x/y", "http or https"), ("http://169.254.169.254/", "link-local")):
        r = requests.post(
            f"{base}/webhooks/subscriptions",
            json={"url": url, "event_types": ["alert.raised"]},
            headers=h,
        )
        assert r.status_code == 422
        assert r.json()["error"]["field"] == "url"
        assert msg in r.json()["error"]["message"]
    r = requests.post(
        f"{base}/webhooks/subscriptions", json={"url": "http://a/", "event_types": []}
    )
    assert r.status_code == 401


def test_events_are_delivered_signed_visible_and_replayable(
    api: tuple[str, dict[str, str]], db: psycopg.Connection
) -> None:
    base, h = api
    with receiver() as (url, got):
        r = requests.post(
            f"{base}/webhooks/subscriptions",
            json={"url": url, "event_types": ["visit.completed"]},
            headers=h,
        )
        assert r.status_code == 201
        sub = r.json()
        event_id = f"visit:{uuid.uuid4().hex[:6]}"
        webhooks.enqueue(db, "visit.completed", event_id, {"visit_id": 5})
        db.commit()
        assert _wait_for(lambda: len(got) >= 1), "the dispatcher did not deliver"
        headers, body = got[0]
        verify(sub["secret"].encode(), headers[HEADER], body, now_s=time.time())
        assert json.loads(body)["id"] == event_id

        items = requests.get(
            f"{base}/webhooks/subscriptions/{sub['id']}/deliveries", headers=h
        ).json()["items"]
        assert _wait_for(
            lambda: (
                requests.get(
                    f"{base}/webhooks/subscriptions/{sub['id']}/deliveries", headers=h
                ).json()["items"][0]["status"]
                == "delivered"
            )
        )
        r = requests.post(f"{base}/webhooks/deliveries/{items[0]['id']}/replay", headers=h)
        assert r.status_code == 202
        assert _wait_for(lambda: len(got) >= 2), "the replay was not delivered"
        assert json.loads(got[1][1])["id"] == event_id
    assert (
        requests.post(f"{base}/webhooks/deliveries/999999999/replay", headers=h).status_code == 404
    )


def test_inbound_connector_upserts_accounts_and_contacts_by_external_id(
    api: tuple[str, dict[str, str]], db: psycopg.Connection
) -> None:
    base, h = api
    name = f"ext-{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{base}/connectors", json={"name": name}, headers=h)
    assert r.status_code == 201
    secret = r.json()["secret"].encode()
    ext = uuid.uuid4().hex[:6]

    def push(payload: Any, key: bytes = secret) -> requests.Response:
        raw = json.dumps(payload).encode()
        return requests.post(
            f"{base}/connectors/{name}/inbound",
            data=raw,
            headers={HEADER: sign(key, int(time.time()), raw), "Content-Type": "application/json"},
        )

    batch = {
        "accounts": [{"external_id": f"A-{ext}", "name": "Harbor Pumps", "type": "customer"}],
        "contacts": [
            {
                "external_id": f"C-{ext}",
                "first_name": "Ana",
                "last_name": "Ruiz",
                "email": "ana@harbor.test",
                "account_external_id": f"A-{ext}",
                "role": "primary",
            }
        ],
    }
    r = push(batch)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accounts": {"created": 1, "updated": 0},
        "contacts": {"created": 1, "updated": 0},
    }
    batch["accounts"][0]["name"] = "Harbor Pumps Ltd"
    r = push(batch)
    assert r.json() == {
        "accounts": {"created": 0, "updated": 1},
        "contacts": {"created": 0, "updated": 1},
    }
    row = db.execute(
        "SELECT a.name, c.last_name, ac.role FROM accounts a "
        "JOIN account_contacts ac ON ac.account_id = a.id JOIN contacts c ON c.id = ac.contact_id "
        "WHERE a.external_id = %s",
        (f"A-{ext}",),
    ).fetchall()
    assert row == [("Harbor Pumps Ltd", "Ruiz", "primary")]

    assert push(batch, key=b"wrong").status_code == 401
    bad = push(
        {"contacts": [{"external_id": "x", "first_name": "A", "account_external_id": "nope"}]}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "contacts.0.account_external_id"
    bad = push({"accounts": [{"external_id": "y"}]})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "accounts.0.name")
    bad = push({"accounts": [{"external_id": "y", "name": 5}]})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "accounts.0.name")
    r = requests.post(
        f"{base}/connectors/none-such/inbound",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 404


def test_assets_are_created_on_accounts_and_unknown_ones_are_clear_errors(
    api: tuple[str, dict[str, str]], db: psycopg.Connection
) -> None:
    base, h = api
    (account,) = db.execute(
        "INSERT INTO accounts (name, type) VALUES ('Dock 9', 'customer') RETURNING id"
    ).fetchone() or (0,)
    db.commit()
    device = f"dev-{uuid.uuid4().hex[:6]}"
    db.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (device,))
    db.commit()
    body = {
        "account_id": account,
        "device_id": device,
        "equipment_model": "pump-p200",
        "serial": "P2-0001",
        "installed_on": "2024-03-01",
        "contract_tier": "premium",
        "sla_hours": 8,
        "required_skills": ["pump"],
    }
    r = requests.post(f"{base}/assets", json=body, headers=h)
    assert r.status_code == 201, r.text
    asset = r.json()
    created = r
    assert (asset["installed_on"], asset["sla_hours"]) == ("2024-03-01", 8)
    assert requests.get(f"{base}/assets/{asset['id']}", headers=h).json()["device_id"] == device
    listed = requests.get(f"{base}/assets", params={"account_id": account}, headers=h).json()
    assert [a["id"] for a in listed["items"]] == [asset["id"]]

    assert requests.post(f"{base}/assets", json=body, headers=h).status_code == 409
    r = requests.post(
        f"{base}/assets", json={**body, "device_id": None, "account_id": 0}, headers=h
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "account_id")
    r = requests.post(
        f"{base}/assets", json={**body, "device_id": None, "installed_on": "soon"}, headers=h
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "installed_on")
    r = requests.post(f"{base}/assets", json={**body, "device_id": "no-such-device"}, headers=h)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "device_id")
    assert requests.get(f"{base}/assets/999999999", headers=h).status_code == 404

    # edit: only the fields given change; null unlinks the device
    url = f"{base}/assets/{asset['id']}"
    tag = {**h, "If-Match": created.headers["ETag"]}
    r = requests.patch(url, json={"contract_tier": "basic", "device_id": None}, headers=tag)
    assert r.status_code == 200, r.text
    tag = {**h, "If-Match": r.headers["ETag"]}
    assert (r.json()["contract_tier"], r.json()["device_id"], r.json()["sla_hours"]) == (
        "basic",
        None,
        8,
    )
    r = requests.patch(url, json={"contract_tier": "gold"}, headers=tag)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "contract_tier")
    r = requests.patch(url, json={"device_id": device}, headers=tag)  # linked to nothing again
    assert r.json()["device_id"] == device
    tag = {**h, "If-Match": r.headers["ETag"]}
    assert requests.patch(f"{base}/assets/999999999", json={}, headers=tag).status_code == 404
    assert requests.delete(url, headers=tag).status_code == 204
    assert requests.delete(url, headers=tag).status_code == 404


def test_asset_changes_and_deletes_need_the_current_etag(
    api: tuple[str, dict[str, str]], db: psycopg.Connection
) -> None:
    base, h = api
    (account,) = db.execute(
        "INSERT INTO accounts (name, type) VALUES ('Dock 10', 'customer') RETURNING id"
    ).fetchone() or (0,)
    db.commit()
    r = requests.post(
        f"{base}/assets", json={"account_id": account, "equipment_model": "pump-p200"}, headers=h
    )
    assert r.status_code == 201, r.text
    first = r.headers["ETag"]
    url = f"{base}/assets/{r.json()['id']}"
    assert requests.get(url, headers=h).headers["ETag"] == first

    # no If-Match: 428; the ETag read, then changed by another writer: 412, nothing written
    r = requests.patch(url, json={"serial": "A"}, headers=h)
    assert (r.status_code, r.json()["error"]["field"]) == (428, "If-Match")
    db.execute("UPDATE assets SET sla_hours = 12 WHERE id = %s", (int(url.rsplit("/", 1)[1]),))
    db.commit()
    r = requests.patch(url, json={"serial": "A"}, headers={**h, "If-Match": first})
    assert (r.status_code, r.json()["error"]["code"]) == (412, "precondition_failed")
    assert requests.get(url, headers=h).json()["serial"] is None
    assert requests.delete(url, headers={**h, "If-Match": first}).status_code == 412

    # with the current ETag it saves, and answers the next one
    current = requests.get(url, headers=h).headers["ETag"]
    assert current != first
    r = requests.patch(url, json={"serial": "A"}, headers={**h, "If-Match": current})
    assert r.status_code == 200, r.text
    assert (r.json()["serial"], r.json()["sla_hours"]) == ("A", 12)
    assert r.headers["ETag"] not in (first, current)
    assert requests.delete(url, headers=h).status_code == 428
    assert requests.delete(url, headers={**h, "If-Match": current}).status_code == 412
    assert requests.delete(url, headers={**h, "If-Match": r.headers["ETag"]}).status_code == 204


def test_asset_values_outside_the_plausible_are_422(
    api: tuple[str, dict[str, str]], db: psycopg.Connection
) -> None:
    base, h = api
    (account,) = db.execute(
        "INSERT INTO accounts (name, type) VALUES ('Dock 11', 'customer') RETURNING id"
    ).fetchone() or (0,)
    db.commit()
    body = {"account_id": account, "equipment_model": "pump-p200"}
    for day in ("0001-01-01", "1899-12-31", "2201-01-01", "9999-12-31"):
        r = requests.post(f"{base}/assets", json={**body, "installed_on": day}, headers=h)
        err = r.json()["error"]
        assert (r.status_code, err["field"], err["code"]) == (422, "installed_on", "implausible")
        assert "between 1900-01-01 and 2200-12-31" in err["message"]
    r = requests.post(f"{base}/assets", json={**body, "installed_on": "1900-01-01"}, headers=h)
    assert r.status_code == 201, r.text
