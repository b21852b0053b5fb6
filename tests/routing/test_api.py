"""Planning from the real CRM tables through the HTTP API and the CLI (real PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import date
from typing import Any

import aiohttp
from aiohttp import web
from psycopg import AsyncConnection

from fieldmesh.app import build_app
from identity import auth
from kernel.settings import Settings
from routing import store
from routing.checker import check_plan
from routing.cli import cmd_plan
from routing.matrix import GreatCircleMatrix
from tests.appserver import job_worker
from tests.eventually import eventually_async

DAY = "2026-12-01"


async def _seed(dsn: str) -> dict[str, Any]:
    sfx = uuid.uuid4().hex[:8]
    async with await AsyncConnection.connect(dsn) as conn:

        async def one(q: str, *args: Any) -> int:
            cur = await conn.execute(q, args)
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        t = await one("INSERT INTO territories (name) VALUES (%s) RETURNING id", f"paris-{sfx}")
        other = await one("INSERT INTO territories (name) VALUES (%s) RETURNING id", f"lyon-{sfx}")
        manager = await auth.create_user(
            conn, email=f"m-{sfx}@x.test", name="M", role="manager", territory_id=t
        )
        rep_e = await auth.create_user(
            conn,
            email=f"e-{sfx}@x.test",
            name="Elec",
            role="rep",
            territory_id=t,
            manager_id=manager,
            skills=["electric"],
        )
        rep_p = await auth.create_user(
            conn,
            email=f"p-{sfx}@x.test",
            name="Plain",
            role="rep",
            territory_id=t,
            manager_id=manager,
        )
        rep_far = await auth.create_user(
            conn, email=f"f-{sfx}@x.test", name="Far", role="rep", territory_id=other
        )
        for uid, (lon, lat) in (
            (rep_e, (2.35, 48.85)),
            (rep_p, (2.30, 48.87)),
            (rep_far, (4.83, 45.76)),
        ):
            await conn.execute(
                "UPDATE users SET home_location = ST_MakePoint(%s, %s)::geography, shift_start = '08:00',"
                " shift_end = '17:00' WHERE id = %s",
                (lon, lat, uid),
            )
        accounts = []
        for k, (lon, lat) in enumerate(
            [(2.33, 48.86), (2.37, 48.84), (2.29, 48.88), (2.36, 48.87), (2.32, 48.83)]
        ):
            accounts.append(
                await one(
                    "INSERT INTO accounts (name, type, location, territory_id, visit_frequency_days)"
                    " VALUES (%s, 'customer', ST_MakePoint(%s, %s)::geography, %s, 30) RETURNING id",
                    f"acct{k}-{sfx}", lon, lat, t,
                )
            )  # fmt: skip
        nowhere = await one(
            "INSERT INTO accounts (name, type, territory_id, visit_frequency_days) VALUES (%s, 'customer', %s, 30) RETURNING id",
            f"nowhere-{sfx}", t,
        )  # fmt: skip
        urgent = await one(
            "INSERT INTO work_orders (account_id, title, priority, required_skills, estimated_duration_min,"
            " earliest_start, latest_end, territory_id) VALUES (%s, 'Breaker trips', 'urgent', '{electric}', 45,"
            " %s, %s, %s) RETURNING id",
            accounts[3], f"{DAY}T09:00Z", f"{DAY}T12:00Z", t,
        )  # fmt: skip
        plumbing = await one(
            "INSERT INTO work_orders (account_id, title, required_skills, territory_id)"
            " VALUES (%s, 'Leak', '{plumbing}', %s) RETURNING id",
            accounts[4], t,
        )  # fmt: skip
        other_manager = await auth.create_user(
            conn, email=f"om-{sfx}@x.test", name="OM", role="manager", territory_id=other
        )
        viewer = await auth.create_user(conn, email=f"v-{sfx}@x.test", name="V", role="viewer")
        admin = await auth.create_user(conn, email=f"a-{sfx}@x.test", name="A", role="admin")
        tokens = {
            name: (await auth.issue_token(conn, uid, "t"))[1]
            for name, uid in (
                ("manager", manager),
                ("rep", rep_e),
                ("rep_p", rep_p),
                ("rep_far", rep_far),
                ("other_manager", other_manager),
                ("viewer", viewer),
                ("admin", admin),
            )
        }
        await conn.commit()
    return {
        "territory": t, "territory_name": f"paris-{sfx}", "rep_e": rep_e, "rep_p": rep_p, "rep_far": rep_far,
        "accounts": accounts, "nowhere": nowhere, "urgent": urgent, "plumbing": plumbing, "tokens": tokens,
    }  # fmt: skip


async def _wait_ready(
    http: aiohttp.ClientSession, base: str, plan_id: int, headers: dict[str, str]
) -> dict[str, Any]:
    async def solved() -> dict[str, Any] | None:
        async with http.get(f"{base}/api/v1/routing/plans/{plan_id}", headers=headers) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
        return body if body["status"] != "solving" else None

    return await eventually_async(solved, timeout_s=120, interval_s=0.2, what="the plan")


async def _scenario(settings: Settings, dsn: str) -> None:
    w = await _seed(dsn)
    app = build_app(settings, ("routing.routes",))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    mgr = {"Authorization": f"Bearer {w['tokens']['manager']}"}
    rep = {"Authorization": f"Bearer {w['tokens']['rep']}"}
    try:
        async with job_worker(settings, ("routing.jobs",)), aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/api/v1/routing/plans",
                json={"territory_id": w["territory"], "date": DAY},
                headers=rep,
            ) as resp:
                assert resp.status == 403
            async with http.post(
                f"{base}/api/v1/routing/plans",
                json={"territory_id": w["territory"], "date": "tomorrow"},
                headers=mgr,
            ) as resp:
                assert resp.status == 422
                assert (await resp.json())["error"]["field"] == "date"
            request = {"territory_id": w["territory"], "date": DAY, "cpu_s": 1.0}
            async with http.post(f"{base}/api/v1/routing/plans", json=request, headers=mgr) as resp:
                assert resp.status == 202
                plan_id = (await resp.json())["id"]
            body = await _wait_ready(http, base, plan_id, mgr)
            assert body["status"] == "ready", body
            stops = {s["visit_key"]: s for r in body["routes"] for s in r["stops"]}
            assert stops[f"wo:{w['urgent']}"]["rep_id"] == w["rep_e"]
            assert {f"account:{a}" for a in w["accounts"][:3]} <= stops.keys()
            assert all(s["rep_id"] in (w["rep_e"], w["rep_p"]) for s in stops.values())
            dropped = {d["visit_key"]: d["reason"] for d in body["dropped"]}
            assert dropped == {
                f"wo:{w['plumbing']}": "no_rep_with_skills",
                f"account:{w['nowhere']}": "unknown_location",
            }

            # The stored plan passes the independent checker against the stored problem.
            async with await AsyncConnection.connect(dsn) as conn:
                row = await store.get_plan_row(conn, plan_id)
            assert row is not None
            problem, result = store.decode_problem(row["problem"]), store.decode_plan(row["result"])
            assert (
                check_plan(problem, GreatCircleMatrix().matrices(problem.locations), result) == []
            )

            async with http.get(
                f"{base}/api/v1/routing/plans/{plan_id}/geojson", headers=mgr
            ) as resp:
                assert resp.status == 200
                gj = await resp.json(content_type=None)
            assert gj["type"] == "FeatureCollection"
            assert sum(f["properties"]["kind"] == "stop" for f in gj["features"]) == len(stops)
            async with http.get(
                f"{base}/api/v1/routing/plans/{plan_id}/reps/{w['rep_e']}.ics", headers=mgr
            ) as resp:
                assert resp.status == 200
                assert resp.content_type == "text/calendar"
                ics = await resp.text()
            assert (
                ics.count("BEGIN:VEVENT")
                == sum(s["rep_id"] == w["rep_e"] for s in stops.values()) + 1
            )  # + lunch

            # Lock a periodic visit on the plain rep; the next plan keeps it with them.
            key = next(
                k
                for k, s in stops.items()
                if k.startswith("account:") and s["rep_id"] == w["rep_p"]
            )
            async with http.patch(
                f"{base}/api/v1/routing/plans/{plan_id}/stops/{key}",
                json={"locked": True, "accepted": True},
                headers=mgr,
            ) as resp:
                assert resp.status == 200
                patched = await resp.json()
            assert patched["locked"] is True and patched["accepted_at"] is not None
            async with http.patch(
                f"{base}/api/v1/routing/plans/{plan_id}/stops/nope",
                json={"locked": True},
                headers=mgr,
            ) as resp:
                assert resp.status == 404
            async with http.post(f"{base}/api/v1/routing/plans", json=request, headers=mgr) as resp:
                second = (await resp.json())["id"]
            body2 = await _wait_ready(http, base, second, mgr)
            stops2 = {s["visit_key"]: s for r in body2["routes"] for s in r["stops"]}
            assert stops2[key]["rep_id"] == w["rep_p"] and stops2[key]["locked"] is True
            # An urgent work order arrives mid-morning: re-plan the rest of the day.
            e_stops = sorted(
                (s for s in stops2.values() if s["rep_id"] == w["rep_e"]), key=lambda s: s["seq"]
            )
            assert len(e_stops) >= 2
            async with await AsyncConnection.connect(dsn) as conn:
                cur = await conn.execute(
                    "INSERT INTO work_orders (account_id, title, priority, estimated_duration_min, territory_id)"
                    " VALUES (%s, 'Predicted failure', 'urgent', 30, %s) RETURNING id",
                    (w["accounts"][2], w["territory"]),
                )
                row2 = await cur.fetchone()
                assert row2 is not None
                new_wo = f"wo:{row2[0]}"
                await conn.commit()
            replan_body = {
                "now": e_stops[1]["service_start"],
                "done": [e_stops[0]["visit_key"]],
                "in_progress": {str(w["rep_e"]): e_stops[1]["visit_key"]},
                "cpu_s": 1.0,
            }
            async with http.post(
                f"{base}/api/v1/routing/plans/{second}/replan", json=replan_body, headers=mgr
            ) as resp:
                assert resp.status == 200, await resp.text()
                rp = await resp.json()
            assert rp["fixed"][str(w["rep_e"])] == [
                e_stops[0]["visit_key"],
                e_stops[1]["visit_key"],
            ]
            assert any(new_wo in c["added"] for c in rp["changes"])
            body3 = await _wait_ready(http, base, rp["id"], mgr)
            e3 = sorted(
                (s for r in body3["routes"] for s in r["stops"] if s["rep_id"] == w["rep_e"]),
                key=lambda s: s["seq"],
            )
            assert [s["visit_key"] for s in e3[:2]] == [
                e_stops[0]["visit_key"],
                e_stops[1]["visit_key"],
            ]
            assert e3[1]["service_start"] == e_stops[1]["service_start"]
            # Fewest reps first: the solver's ILS starts its own worker from the job's
            # spawned solver process, and the plan serves what the first one served.
            request_min = {**request, "minimise_reps": True}
            async with http.post(
                f"{base}/api/v1/routing/plans", json=request_min, headers=mgr
            ) as resp:
                assert resp.status == 202
                min_id = (await resp.json())["id"]
            body_min = await _wait_ready(http, base, min_id, mgr)
            assert body_min["status"] == "ready", repr(body_min)
            async with await AsyncConnection.connect(dsn) as conn:
                row = await store.get_plan_row(conn, min_id)
            assert row is not None
            problem, result = store.decode_problem(row["problem"]), store.decode_plan(row["result"])
            # every visit it could plan is served; only the unplannable ones are dropped
            served_min = {s["visit_key"] for r in body_min["routes"] for s in r["stops"]}
            dropped_min = {d["visit_key"] for d in body_min["dropped"]}
            assert {v.id for v in problem.visits} == served_min | dropped_min
            assert {d["reason"] for d in body_min["dropped"]} == {
                "no_rep_with_skills",
                "unknown_location",
            }
            # the CRM's day (lunch breaks, skills, reps from their homes) is PyVRP's
            assert result.stats["engine_pyvrp"] == 1.0
            assert (
                check_plan(problem, GreatCircleMatrix().matrices(problem.locations), result) == []
            )
            async with http.get(f"{base}/api/v1/routing/plans/999999999", headers=mgr) as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()
    # The CLI plans the same territory by name and stores a plan.
    args = argparse.Namespace(
        territory=[w["territory_name"]],
        date=date.fromisoformat(DAY),
        cpu_s=1.0,
        minimise_reps=True,
        geojson=None,
        ics_dir=None,
        osm=None,
    )
    assert await asyncio.to_thread(cmd_plan, args, settings) == 0


def test_plan_from_crm_tables_via_api_and_cli(test_settings: Settings, db_dsn: str) -> None:
    asyncio.run(_scenario(test_settings, db_dsn))
