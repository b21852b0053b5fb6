"""Web Push end to end: an urgent work order for the rep becomes a notification (phone's
scan job), is pushed by the notify job (pywebpush, VAPID) to a local push service
(web-push-testing), reaches Chromium's service worker, is shown, and a tap opens the work
order. An expired subscription (410) is pruned."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection

from fieldmesh.svc_pushtest import LocalPushService
from kernel.settings import Settings
from notify.service import notify_user
from tests.console.conftest import make_user
from tests.eventually import eventually


async def _mention(dsn: str, user_id: int) -> None:
    async with await AsyncConnection.connect(dsn) as conn:
        await notify_user(
            conn,
            user_id=user_id,
            kind="mention",
            title="You were mentioned",
            link="/console/rep/",
            dedupe_key=f"mention:{uuid.uuid4().hex}",
        )
        await conn.commit()


def _urgent_work_order(dsn: str, rep: dict[str, Any], territory: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        a = conn.execute(
            "INSERT INTO accounts (name, type, location, territory_id)"
            " VALUES (%s, 'customer', ST_MakePoint(4.85, 45.76)::geography, %s) RETURNING id",
            (f"Urgent site {uuid.uuid4().hex[:6]}", territory),
        ).fetchone()
        assert a is not None
        w = conn.execute(
            "INSERT INTO work_orders (account_id, title, territory_id, assignee_id, status,"
            " priority) VALUES (%s, 'Pump down', %s, %s, 'assigned', 'urgent') RETURNING id",
            (a[0], territory, rep["id"]),
        ).fetchone()
        assert w is not None
        return int(w[0])


def test_an_urgent_work_order_is_pushed_shown_and_opened_by_a_tap(
    phone_app: str,
    phone_settings: Settings,
    push_service: LocalPushService,
    tmp_path: Path,
    run_phone: Callable[..., dict[str, Any]],
) -> None:
    dsn = phone_settings.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id",
            (f"push-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        assert row is not None
    territory = int(row[0])
    rep = make_user(dsn, "rep", territory_id=territory)
    ready = tmp_path / "ready.json"
    wo: list[int] = []

    def urgent_when_subscribed() -> None:
        eventually(lambda: ready.exists() or None, timeout_s=120, interval_s=0.1, what="page")
        wo.append(_urgent_work_order(dsn, rep, territory))

    t = threading.Thread(target=urgent_when_subscribed, daemon=True)
    t.start()
    r = run_phone(
        "push",
        phone_app,
        {"user": rep, "pushUrl": push_service.url, "readyFile": str(ready)},
    )
    t.join(10)
    assert len(wo) == 1
    (shown,) = [s for s in r["shown"] if s["link"] == f"/console/rep/#wo/{wo[0]}"]
    assert shown["title"] == "Urgent: Pump down"
    assert r["screen"] == f"wo/{wo[0]}" and r["focused"] == str(wo[0])
    assert "Urgent site" in r["nextTitle"]
    assert any(m["kind"] == "work_order.urgent" for m in r["relayed"])
    assert r["errors"] == []

    # the push service says the subscription expired (410): the next delivery prunes it
    push_service.expire(r["clientHash"])
    asyncio.run(_mention(dsn, rep["id"]))

    def pruned() -> bool | None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM push_subscriptions WHERE user_id = %s", (rep["id"],)
            ).fetchone()
        return True if row == (0,) else None

    eventually(pruned, timeout_s=120, interval_s=0.5, what="expired subscription pruned")
    assert json.loads(ready.read_text())["clientHash"] == r["clientHash"]
