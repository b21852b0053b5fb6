"""Alert rules are editable through the API; alerts are listed and acknowledged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from alerts import store as alert_store
from alerts.rules import Severity
from identity import auth
from kernel.settings import Settings
from tests.crm_sync.appserver import serve_app
from tests.crm_sync.fixtures import make_site

pytestmark = pytest.mark.integration


async def _token(dsn: str) -> tuple[str, str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        email = f"ops-{uuid.uuid4().hex[:8]}@x.test"
        uid = await auth.create_user(conn, email=email, name="Ops", role="admin")
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
        return token, email


@pytest.fixture(scope="module")
def api(test_settings: Settings, db_dsn: str) -> Iterator[tuple[str, dict[str, str], str]]:
    token, email = asyncio.run(_token(db_dsn))
    with serve_app(test_settings, ("alerts.routes",)) as base:
        yield base, {"Authorization": f"Bearer {token}"}, email


RULE: dict[str, Any] = {
    "equipment_model": "pump-p200",
    "metric": "vibration_mm_s",
    "kind": "threshold",
    "direction": "above",
    "limit": 7.0,
    "clear_at": 6.0,
    "min_duration_s": 60,
    "severity": "critical",
}


def test_rules_are_created_replaced_listed_and_deleted(
    api: tuple[str, dict[str, str], str],
) -> None:
    base, h, _ = api
    rid = f"vib-{uuid.uuid4().hex[:6]}"
    r = requests.put(f"{base}/alert-rules/{rid}", json=RULE, headers=h)
    assert r.status_code == 201, r.text
    r = requests.put(f"{base}/alert-rules/{rid}", json={**RULE, "limit": 8}, headers=h)
    assert (r.status_code, r.json()["limit"]) == (200, 8.0)
    listed = requests.get(f"{base}/alert-rules", headers=h).json()["items"]
    assert [x["limit"] for x in listed if x["rule_id"] == rid] == [8.0]
    assert requests.delete(f"{base}/alert-rules/{rid}", headers=h).status_code == 204
    assert requests.delete(f"{base}/alert-rules/{rid}", headers=h).status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"metric": "flow_m3_h"}, "metric", "does not report metric 'flow_m3_h'"),
        ({"equipment_model": "warp-drive"}, "equipment_model", "unknown equipment model"),
        ({"clear_at": 9.0}, None, "clear_at"),
        ({"kind": "vibes"}, None, "vibes"),
        ({"limit": "high"}, "limit", "Expected `float`, got `str`"),
        ({"severity": "apocalyptic"}, "severity", "apocalyptic"),
    ],
)
def test_bad_rules_are_refused_naming_the_problem(
    api: tuple[str, dict[str, str], str], change: dict[str, Any], field: str | None, text: str
) -> None:
    base, h, _ = api
    r = requests.put(
        f"{base}/alert-rules/bad-{uuid.uuid4().hex[:6]}", json={**RULE, **change}, headers=h
    )
    assert r.status_code == 422
    assert text in r.json()["error"]["message"]
    if field is not None:
        assert r.json()["error"]["field"] == field


def test_alerts_are_listed_and_acknowledged_once_active(
    api: tuple[str, dict[str, str], str], db: psycopg.Connection
) -> None:
    base, h, email = api
    device = f"dev-{uuid.uuid4().hex[:6]}"
    ev = alert_store.raise_alert(
        db, device, "vibration_mm_s:threshold:above", Severity.CRITICAL, 1_764_000_000_000
    )
    db.commit()
    items = requests.get(f"{base}/alerts", params={"device_id": device}, headers=h).json()["items"]
    assert [a["alert_id"] for a in items] == [ev.alert.alert_id]
    r = requests.post(f"{base}/alerts/{ev.alert.alert_id}/acknowledge", headers=h)
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["acknowledged_by"]) == ("acknowledged", email)
    alert_store.clear_alert(db, device, "vibration_mm_s:threshold:above", 1_764_000_060_000)
    db.commit()
    assert (
        requests.get(f"{base}/alerts", params={"device_id": device}, headers=h).json()["items"]
        == []
    )
    r = requests.post(f"{base}/alerts/{ev.alert.alert_id}/acknowledge", headers=h)
    assert r.status_code == 409
    assert requests.post(f"{base}/alerts/nope/acknowledge", headers=h).status_code == 404
    assert requests.get(f"{base}/alerts").status_code == 401


# --------------------------------------------------------------------------- access


async def _user(dsn: str, role: str, territory_id: int | None = None) -> tuple[str, str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        email = f"{role}-{uuid.uuid4().hex[:8]}@x.test"
        uid = await auth.create_user(
            conn, email=email, name=role, role=role, territory_id=territory_id
        )
        _, token = await auth.issue_token(conn, uid, "test")
        await conn.commit()
        return token, email


def _raise(db: psycopg.Connection, device: str) -> str:
    ev = alert_store.raise_alert(
        db, device, "vibration_mm_s:threshold:above", Severity.CRITICAL, 1_764_000_000_000
    )
    db.commit()
    return ev.alert.alert_id


def test_a_rep_sees_and_acknowledges_alerts_of_their_territory_only(
    api: tuple[str, dict[str, str], str], db: psycopg.Connection, db_dsn: str
) -> None:
    base, admin, _ = api
    mine, theirs = make_site(db), make_site(db)
    rep_token, rep_email = asyncio.run(_user(db_dsn, "rep", mine.territory_id))
    rep = {"Authorization": f"Bearer {rep_token}"}
    viewer = {"Authorization": f"Bearer {asyncio.run(_user(db_dsn, 'viewer'))[0]}"}
    my_alert, their_alert = _raise(db, mine.device_id), _raise(db, theirs.device_id)

    listed = {a["alert_id"] for a in requests.get(f"{base}/alerts", headers=rep).json()["items"]}
    assert my_alert in listed
    assert their_alert not in listed
    r = requests.get(f"{base}/alerts", params={"device_id": theirs.device_id}, headers=rep)
    assert r.json()["items"] == []
    # an admin sees both
    listed = {a["alert_id"] for a in requests.get(f"{base}/alerts", headers=admin).json()["items"]}
    assert {my_alert, their_alert} <= listed

    r = requests.post(f"{base}/alerts/{their_alert}/acknowledge", headers=rep)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    state = db.execute("SELECT state FROM alerts WHERE alert_id = %s", (their_alert,)).fetchone()
    assert state == ("raised",)
    r = requests.post(f"{base}/alerts/{my_alert}/acknowledge", headers=viewer)
    assert r.status_code == 403
    r = requests.post(f"{base}/alerts/{my_alert}/acknowledge", headers=rep)
    assert (r.status_code, r.json()["acknowledged_by"]) == (200, rep_email)


def test_rules_are_read_by_all_and_changed_by_admins(
    api: tuple[str, dict[str, str], str], db_dsn: str
) -> None:
    base, _, _ = api
    rep = {"Authorization": f"Bearer {asyncio.run(_user(db_dsn, 'rep'))[0]}"}
    assert requests.get(f"{base}/alert-rules", headers=rep).status_code == 200
    assert requests.put(f"{base}/alert-rules/r-x", json=RULE, headers=rep).status_code == 403
    assert requests.delete(f"{base}/alert-rules/r-x", headers=rep).status_code == 403
    r = requests.get(f"{base}/alerts", params={"state": "some"}, headers=rep)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "state")
