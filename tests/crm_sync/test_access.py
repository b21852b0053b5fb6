"""Who may do what in crm_sync: assets follow their account, webhooks and connectors are
for admins, and the inbound connector's contacts go through the CRM's own rules."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests

from crm import records
from crm_sync.signing import HEADER, sign
from identity import auth
from kernel.settings import Settings

from .appserver import serve_app
from .fixtures import Site, make_site

pytestmark = pytest.mark.integration


async def _token(dsn: str, role: str, territory_id: int | None = None) -> str:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        uid = await auth.create_user(
            conn,
            email=f"{role}-{uuid.uuid4().hex[:8]}@x.test",
            name=role,
            role=role,
            territory_id=territory_id,
        )
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
        return token


@dataclass(frozen=True)
class World:
    base: str
    mine: Site  # the rep's territory
    theirs: Site  # another territory
    rep: dict[str, str]
    viewer: dict[str, str]
    admin: dict[str, str]
    manager: dict[str, str]  # of the rep's territory


@pytest.fixture(scope="module")
def world(test_settings: Settings, db_dsn: str) -> Iterator[World]:
    with psycopg.connect(db_dsn) as conn:
        mine, theirs = make_site(conn), make_site(conn)
        for site in (mine, theirs):
            conn.execute(
                "INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (site.device_id,)
            )
        conn.commit()

    def h(role: str, territory: int | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {asyncio.run(_token(db_dsn, role, territory))}"}

    with serve_app(test_settings) as base:
        yield World(
            base,
            mine,
            theirs,
            h("rep", mine.territory_id),
            h("viewer"),
            h("admin"),
            h("manager", mine.territory_id),
        )


def _asset(account_id: int) -> dict[str, Any]:
    return {"account_id": account_id, "equipment_model": "pump-p200", "sla_hours": 24}


def test_a_rep_reads_assets_of_their_territory_only(world: World) -> None:
    b = world.base
    r = requests.get(f"{b}/assets/{world.mine.asset_id}", headers=world.rep)
    assert (r.status_code, r.json()["account_id"]) == (200, world.mine.account_id)
    r = requests.get(f"{b}/assets/{world.theirs.asset_id}", headers=world.rep)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    # the admin sees it: the 404 was the scope, not a missing row
    assert requests.get(f"{b}/assets/{world.theirs.asset_id}", headers=world.admin).ok

    r = requests.get(f"{b}/assets", params={"account_id": world.mine.account_id}, headers=world.rep)
    assert [a["id"] for a in r.json()["items"]] == [world.mine.asset_id]
    r = requests.get(
        f"{b}/assets", params={"account_id": world.theirs.account_id}, headers=world.rep
    )
    assert r.status_code == 404
    r = requests.get(f"{b}/assets", params={"account_id": "x"}, headers=world.rep)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "account_id")


def test_a_rep_creates_assets_on_their_accounts_only(world: World, db: psycopg.Connection) -> None:
    b = world.base
    r = requests.post(f"{b}/assets", json=_asset(world.theirs.account_id), headers=world.rep)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "account_id")
    (n,) = db.execute(
        "SELECT count(*) FROM assets WHERE account_id = %s", (world.theirs.account_id,)
    ).fetchone() or (0,)
    assert n == 1  # only the fixture's own asset
    r = requests.post(f"{b}/assets", json=_asset(world.mine.account_id), headers=world.rep)
    assert r.status_code == 201, r.text
    r = requests.post(f"{b}/assets", json=_asset(world.mine.account_id), headers=world.viewer)
    assert r.status_code == 403
    r = requests.post(
        f"{b}/assets", json={**_asset(world.mine.account_id), "sla_hours": "8"}, headers=world.rep
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "sla_hours")


def _assets_with(db: psycopg.Connection, device_id: str) -> list[int]:
    rows = db.execute("SELECT id FROM assets WHERE device_id = %s", (device_id,)).fetchall()
    db.commit()
    return [r[0] for r in rows]


def test_a_device_is_linked_only_by_who_may_see_it(world: World, db: psycopg.Connection) -> None:
    """Linking a device makes it visible through the account: a rep calling the API
    directly must not gain another territory's device by linking its code."""
    b = world.base
    theirs = world.theirs.device_id
    body = {**_asset(world.mine.account_id), "device_id": theirs}
    for who in (world.rep, world.manager):
        r = requests.post(f"{b}/assets", json=body, headers=who)
        assert (r.status_code, r.json()["error"]["field"]) == (422, "device_id"), r.text
    assert _assets_with(db, theirs) == [world.theirs.asset_id]  # nothing written
    # the rep still does not see it (no alert/telemetry path opened either)
    r = requests.get(f"{b}/devices/{theirs}", headers=world.rep)
    assert r.status_code == 404

    # a device linked to nothing: admins and managers may link it, a rep may not
    spare = f"dev-{uuid.uuid4().hex[:8]}"
    db.execute("INSERT INTO device (device_id, tenant) VALUES (%s, 't')", (spare,))
    db.commit()
    body = {**_asset(world.mine.account_id), "device_id": spare}
    r = requests.post(f"{b}/assets", json=body, headers=world.rep)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "device_id")
    assert _assets_with(db, spare) == []
    r = requests.post(f"{b}/assets", json=body, headers=world.manager)
    assert r.status_code == 201, r.text
    assert _assets_with(db, spare) == [r.json()["id"]]
    # an unknown code is the same answer as a refused one (existence does not leak)
    r = requests.post(f"{b}/assets", json={**body, "device_id": "none-such"}, headers=world.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "unknown_reference")


def test_a_rep_edits_and_deletes_assets_of_their_territory_only(
    world: World, db: psycopg.Connection
) -> None:
    b = world.base
    r = requests.post(f"{b}/assets", json=_asset(world.mine.account_id), headers=world.rep)
    mine = r.json()["id"]
    tag = {**world.rep, "If-Match": r.headers["ETag"]}
    theirs = world.theirs.asset_id

    r = requests.patch(f"{b}/assets/{theirs}", json={"sla_hours": 4}, headers=world.rep)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert requests.delete(f"{b}/assets/{theirs}", headers=world.rep).status_code == 404
    row = db.execute("SELECT sla_hours FROM assets WHERE id = %s", (theirs,)).fetchone()
    db.commit()
    assert row == (48,)  # unchanged, not deleted

    # the device link is checked as on create: another territory's device is refused
    r = requests.patch(
        f"{b}/assets/{mine}", json={"device_id": world.theirs.device_id}, headers=tag
    )
    assert (r.status_code, r.json()["error"]["field"]) == (422, "device_id")
    assert _assets_with(db, world.theirs.device_id) == [theirs]

    r = requests.patch(f"{b}/assets/{mine}", json={"sla_hours": 6, "serial": "SN-9"}, headers=tag)
    assert r.status_code == 200, r.text
    tag = {**world.rep, "If-Match": r.headers["ETag"]}
    assert (r.json()["sla_hours"], r.json()["serial"], r.json()["equipment_model"]) == (
        6,
        "SN-9",
        "pump-p200",
    )
    r = requests.patch(f"{b}/assets/{mine}", json={"sla_hours": 0}, headers=world.rep)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "sla_hours")
    r = requests.patch(f"{b}/assets/{mine}", json={"account_id": theirs}, headers=world.rep)
    assert r.status_code == 422  # the account is not a field an edit may change
    assert requests.delete(f"{b}/assets/{mine}", headers=world.viewer).status_code == 403
    assert requests.delete(f"{b}/assets/{mine}", headers=tag).status_code == 204
    assert requests.get(f"{b}/assets/{mine}", headers=world.rep).status_code == 404


def test_webhooks_and_connectors_are_managed_by_admins(world: World) -> None:
    b = world.base
    sub = {"url": "https://93.184.216.34/h", "event_types": ["alert.raised"]}
    for role in (world.rep, world.viewer):
        assert (
            requests.post(f"{b}/webhooks/subscriptions", json=sub, headers=role).status_code == 403
        )
        assert requests.post(f"{b}/connectors", json={"name": "x"}, headers=role).status_code == 403
        assert requests.get(f"{b}/webhooks/health", headers=role).status_code == 403
        assert (
            requests.get(f"{b}/webhooks/subscriptions/1/deliveries", headers=role).status_code
            == 403
        )
    health = requests.get(f"{b}/webhooks/health", headers=world.admin).json()
    assert health["running"] is True
    assert {"last_run_at", "pending", "due", "dead", "errors", "last_error"} <= set(health)


def test_subscriptions_refuse_every_unsafe_target(world: World) -> None:
    b = world.base
    long_host = ".".join(["h" * 59] * 5)
    for url, msg in (
        ("http://127.0.0.1:9/h", "loopback"),  # no allow-list in this app
        ("http://10.1.2.3/h", "private"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://100.64.1.1/", "carrier-grade NAT"),
        (f"http://{long_host}/h", "longer than 253"),
        ("https://93.184.216.34/" + "p" * 2100, "2048"),
    ):
        r = requests.post(
            f"{b}/webhooks/subscriptions",
            json={"url": url, "event_types": ["alert.raised"]},
            headers=world.admin,
        )
        assert (r.status_code, r.json()["error"]["field"]) == (422, "url"), url
        assert msg in r.json()["error"]["message"], r.json()


def test_connector_contacts_get_the_crms_rules(world: World, db_dsn: str) -> None:
    """Contacts from the connector get a normalised phone, so dedupe finds them."""
    b = world.base
    name = f"ext-{uuid.uuid4().hex[:6]}"
    secret = requests.post(f"{b}/connectors", json={"name": name}, headers=world.admin).json()[
        "secret"
    ]
    ext = uuid.uuid4().hex[:6]
    digits = str(uuid.uuid4().int)[:9]
    batch = {
        "accounts": [{"external_id": f"A-{ext}", "name": "Quay Pumps"}],
        "contacts": [
            {
                "external_id": f"C1-{ext}",
                "last_name": "Moss",
                "phone": f"+44 {digits[:3]} {digits[3:]}",
                "account_external_id": f"A-{ext}",
                "role": "primary",
            },
            {"external_id": f"C2-{ext}", "last_name": "Moss", "phone": f"0044-{digits}"},
        ],
    }
    raw = json.dumps(batch).encode()
    r = requests.post(
        f"{b}/connectors/{name}/inbound",
        data=raw,
        headers={
            HEADER: sign(secret.encode(), int(time.time()), raw),
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 200, r.text

    async def check() -> None:
        async with await psycopg.AsyncConnection.connect(db_dsn) as conn:
            cur = await conn.execute(
                "SELECT external_id, phone_normalized FROM contacts WHERE external_id = ANY(%s) "
                "ORDER BY external_id",
                ([f"C1-{ext}", f"C2-{ext}"],),
            )
            rows = await cur.fetchall()
            assert rows == [(f"C1-{ext}", f"+44{digits}"), (f"C2-{ext}", f"+44{digits}")]
            cur = await conn.execute("SELECT id FROM users WHERE role = 'admin' LIMIT 1")
            (admin_id,) = await cur.fetchone() or (0,)
            principal = await auth.load_principal(conn, admin_id)
            assert principal is not None
            groups = await records.duplicate_groups(conn, principal, limit=10_000)
            phones = {g["value"]: len(g["contact_ids"]) for g in groups if g["key"] == "phone"}
            assert phones.get(f"+44{digits}") == 2
            # the write is in the CRM's audit trail, as any other
            cur = await conn.execute(
                "SELECT count(*) FROM audit_log a JOIN contacts c ON c.id = a.record_id "
                "WHERE a.table_name = 'contacts' AND c.external_id = %s",
                (f"C1-{ext}",),
            )
            (audited,) = await cur.fetchone() or (0,)
            assert audited >= 1

    asyncio.run(check())
