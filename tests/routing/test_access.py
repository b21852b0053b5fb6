"""Who sees and changes routing plans, and what bad planning input answers (real PostgreSQL).

The rule (routing.access): a rep sees only plans that route them and only their own route
in them; their manager sees the territory's plans; another territory's rep or manager gets
404; viewers read everything and write nothing (403); bad input is a 4xx naming the field.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from fieldmesh.app import build_app
from kernel.settings import Settings
from tests.appserver import job_worker
from tests.routing.test_api import DAY, _seed, _wait_ready


def test_plans_are_scoped_and_bad_input_is_refused(test_settings: Settings, db_dsn: str) -> None:
    asyncio.run(_scenario(test_settings, db_dsn))


async def _scenario(settings: Settings, dsn: str) -> None:
    w = await _seed(dsn)
    app = build_app(settings, ("routing.routes",))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/api/v1/routing/plans"
    h = {name: {"Authorization": f"Bearer {tok}"} for name, tok in w["tokens"].items()}
    try:
        async with job_worker(settings, ("routing.jobs",)), aiohttp.ClientSession() as http:

            async def call(method: str, url: str, who: str, body: Any = None) -> tuple[int, Any]:
                async with http.request(method, base + url, json=body, headers=h[who]) as r:
                    ctype = r.content_type
                    data = await r.json(content_type=None) if "json" in ctype else await r.text()
                    return r.status, data

            # --- the boolean-string case: "false" is not true, it is a 422 naming the field
            request = {"territory_id": w["territory"], "date": DAY, "cpu_s": 1.0}
            status, err = await call("POST", "", "manager", {**request, "minimise_reps": "false"})
            assert status == 422 and err["error"]["field"] == "minimise_reps"

            status, created = await call("POST", "", "manager", request)
            assert status == 202
            plan_id = created["id"]
            body = await _wait_ready(
                http, base.removesuffix("/api/v1/routing/plans"), plan_id, h["manager"]
            )
            assert body["status"] == "ready", body
            reps_in_plan = {s["rep_id"] for r in body["routes"] for s in r["stops"]}
            assert reps_in_plan == {w["rep_e"], w["rep_p"]}
            p_key = next(
                s["visit_key"]
                for r in body["routes"]
                for s in r["stops"]
                if s["rep_id"] == w["rep_p"]
            )
            e_key = next(
                s["visit_key"]
                for r in body["routes"]
                for s in r["stops"]
                if s["rep_id"] == w["rep_e"]
            )

            # --- reads: a rep gets only their own route; others' plans and calendars are 404
            status, mine = await call("GET", f"/{plan_id}", "rep")
            assert status == 200
            assert {s["rep_id"] for r in mine["routes"] for s in r["stops"]} == {w["rep_e"]}
            assert mine["dropped"] == []
            status, gj = await call("GET", f"/{plan_id}/geojson", "rep")
            assert status == 200
            assert {f["properties"]["rep_id"] for f in gj["features"]} == {str(w["rep_e"])}
            assert (await call("GET", f"/{plan_id}/geojson?rep_id={w['rep_p']}", "rep"))[0] == 404
            assert (await call("GET", f"/{plan_id}/reps/{w['rep_e']}.ics", "rep"))[0] == 200
            assert (await call("GET", f"/{plan_id}/reps/{w['rep_p']}.ics", "rep"))[0] == 404
            assert (await call("GET", f"/{plan_id}/reps/{w['rep_e']}.ics", "rep_p"))[0] == 404
            for who in ("rep_far", "other_manager"):
                assert (await call("GET", f"/{plan_id}", who))[0] == 404
                assert (await call("GET", f"/{plan_id}/geojson", who))[0] == 404
                assert (await call("GET", f"/{plan_id}/reps/{w['rep_e']}.ics", who))[0] == 404
            for who in ("manager", "viewer", "admin"):
                status, seen = await call("GET", f"/{plan_id}", who)
                assert status == 200 and len(seen["dropped"]) == 2
                assert {s["rep_id"] for r in seen["routes"] for s in r["stops"]} == reps_in_plan
                assert (await call("GET", f"/{plan_id}/reps/{w['rep_p']}.ics", who))[0] == 200

            # --- writes: stops by their own rep or a manager; plans and re-plans by managers
            patch = {"accepted": True}
            assert (await call("PATCH", f"/{plan_id}/stops/{p_key}", "rep", patch))[0] == 404
            status, stop = await call("PATCH", f"/{plan_id}/stops/{e_key}", "rep", patch)
            assert status == 200 and stop["accepted_at"] is not None
            assert (await call("PATCH", f"/{plan_id}/stops/{e_key}", "viewer", patch))[0] == 403
            assert (await call("PATCH", f"/{plan_id}/stops/{e_key}", "rep_far", patch))[0] == 404
            assert (await call("POST", "", "viewer", request))[0] == 403
            assert (await call("POST", "", "rep", request))[0] == 403
            assert (await call("POST", "", "other_manager", request))[0] == 403
            replan_body = {"cpu_s": 0.5, "now": f"{DAY}T08:00:00Z"}
            assert (await call("POST", f"/{plan_id}/replan", "rep", replan_body))[0] == 403
            assert (await call("POST", f"/{plan_id}/replan", "viewer", replan_body))[0] == 403
            assert (await call("POST", f"/{plan_id}/replan", "other_manager", replan_body))[
                0
            ] == 404

            # --- bad input: 4xx with the field named, never a 5xx
            bad: list[tuple[str, Any, int, str | None]] = [
                ("manager", {**request, "date": "9999-12-31"}, 422, "date"),
                ("manager", {**request, "date": "2026-02-30"}, 422, "date"),
                ("manager", {**request, "cpu_s": 0}, 422, "cpu_s"),
                ("manager", {**request, "cpu_s": "1"}, 422, "cpu_s"),
                ("manager", {**request, "minimize_reps": True}, 422, "minimize_reps"),  # a typo
                ("manager", {**request, "lunch": {"start": "25:00"}}, 422, "lunch.start"),
                ("manager", {**request, "lunch": {"start": "15:00", "end": "12:00"}}, 422, "lunch.end"),
                ("manager", {**request, "now": "2026-12-01T08:00:00"}, 422, "now"),
                ("manager", {**request, "territory_id": 2**70}, 422, "territory_id"),
                ("manager", {**request, "territory_id": "1"}, 422, "territory_id"),
                ("manager", {"date": DAY}, 422, "territory_id"),
                ("manager", {**request, "territory_ids": []}, 422, "territory_ids"),
                ("admin", {**request, "territory_id": 999_999_999}, 422, "territory_id"),
                ("admin", {**request, "territory_id": None, "territory_ids": [w["territory"], 999_999_999]}, 422, "territory_ids"),
                ("manager", [request], 422, None),
            ]  # fmt: skip
            for who, payload, want, field in bad:
                status, err = await call("POST", "", who, payload)
                assert (status, err["error"]["field"]) == (want, field), (payload, err)
            for url, payload, want, field in (
                (f"/{plan_id}/stops/{e_key}", {}, 422, "locked"),
                (f"/{plan_id}/stops/{e_key}", {"locked": "true"}, 422, "locked"),
                (f"/{plan_id}/stops/nope", {"locked": True}, 404, "visit_key"),
                (f"/{plan_id}/stops/%00", {"locked": True}, 400, "visit_key"),
                ("/%00/stops/wo:1", {"locked": True}, 400, "plan_id"),
            ):
                status, err = await call("PATCH", url, "manager", payload)
                assert (status, err["error"]["field"]) == (want, field), (url, payload, err)
            for payload, field in (
                ({"done": ["x"]}, "done.0"),
                ({"done": "wo:1"}, "done"),
                ({"in_progress": {"abc": "wo:1"}}, None),
                ({"now": "0001-01-01T00:00:00+01:00"}, "now"),
                ({"cpu_s": 11}, "cpu_s"),  # a re-plan waits for its answer
                ({"done": ["wo:999999999"]}, "done"),
                ({"in_progress": {str(w["rep_e"]): "account:999999999"}}, "in_progress"),
            ):
                status, err = await call("POST", f"/{plan_id}/replan", "manager", payload)
                assert (status, err["error"]["field"]) == (422, field), (payload, err)
            for url in ("/99999999999999999999999", "/abc", "/\u0661", "/0", "/1.5"):
                assert (await call("GET", url, "admin"))[0] == 404, url
            assert (await call("GET", f"/{plan_id}/reps/abc.ics", "admin"))[0] == 404
            assert (await call("GET", f"/{plan_id}/geojson?rep_id=x", "admin"))[0] == 422

            # --- the generated document describes the GeoJSON answer, not "a string"
            async with http.get(base.replace("routing/plans", "openapi.json")) as r:
                doc = await r.json()
            ok = doc["paths"]["/api/v1/routing/plans/{plan_id}/geojson"]["get"]["responses"]["200"]
            schema = ok["content"]["application/geo+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/PlanGeoJson"}
            assert "/api/v1/routing/plans/{plan_id}/reps/{rep_id}.ics" in doc["paths"]
    finally:
        await runner.cleanup()
