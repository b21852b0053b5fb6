"""Alert rules are editable through the API; alerts are listed and acknowledged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from gateway import alert_store
from gateway.rules import Severity
from identity import auth
from kernel.settings import Settings
from tests.crm_sync.appserver import serve_app

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
    with serve_app(test_settings, ("gateway.alert_routes",)) as base:
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
        ({"limit": "high"}, "limit", "limit is required"),
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
