"""The CRM API against the real database: CRUD, concurrency, idempotency, access, audit,
hierarchy, conversion, assignment, filters, pagination, work orders and analytics."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.crm.conftest import World, etag_of


def _account(world: World, who: str, **fields: object) -> dict[str, Any]:
    body = {"name": f"Acme {uuid.uuid4().hex[:6]}", **fields}
    r = world.api(who).post("/accounts", body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_requests_without_a_valid_token_are_401_in_the_error_shape(world: World) -> None:
    r = world.api("admin").session.get(
        world.url + "/api/v1/accounts", headers={"Authorization": ""}
    )
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"code", "message", "field"}
    r = world.api("admin").session.get(
        world.url + "/api/v1/accounts", headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401


def test_create_read_update_with_etag_and_if_match(world: World) -> None:
    api = world.api("rep1")
    acc = _account(
        world,
        "rep1",
        type="customer",
        annual_revenue=1200.5,
        location={"type": "Point", "coordinates": [13.4, 52.5]},
    )
    assert acc["owner_id"] == world.users["rep1"] and acc["territory_id"] == world.t1
    assert acc["visit_frequency_days"] == 30  # the customer default
    assert acc["location"]["coordinates"] == [13.4, 52.5]
    r = api.get(f"/accounts/{acc['id']}")
    tag = etag_of(r)
    assert api.patch(f"/accounts/{acc['id']}", {"health_score": 80}).status_code == 428
    assert (
        api.patch(
            f"/accounts/{acc['id']}", {"health_score": 80}, headers={"If-Match": '"stale"'}
        ).status_code
        == 412
    )
    r = api.patch(f"/accounts/{acc['id']}", {"health_score": 80}, headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["health_score"] == 80 and r.json()["version"] == 2
    again = api.patch(f"/accounts/{acc['id']}", {"health_score": 81}, headers={"If-Match": tag})
    assert again.status_code == 412


def test_bad_input_names_the_field(world: World) -> None:
    api = world.api("rep1")
    r = api.post("/accounts", {"name": "x", "health_score": 101})
    assert r.status_code == 422 and r.json()["error"]["field"] == "health_score"
    r = api.post("/accounts", {"name": "x", "colour": "red"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "colour"
    r = api.post("/accounts", {"type": "customer"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = api.post("/accounts", {"name": "x", "owner_id": 999999999})
    assert r.status_code == 422 and r.json()["error"]["field"] == "owner_id"
    r = api.session.post(
        api.base + "/accounts", data="{nope", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400


def test_idempotency_key_replays_the_first_response(world: World) -> None:
    api = world.api("rep1")
    key = uuid.uuid4().hex
    body = {"name": f"Idem {key[:6]}"}
    first = api.post("/accounts", body, headers={"Idempotency-Key": key})
    second = api.post("/accounts", body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    r = world.api("admin").get(
        "/accounts",
        params={
            "filter": json.dumps({"field": "name", "op": "eq", "value": body["name"]}),
            "total": "true",
        },
    )
    assert r.json()["total"] == 1
    other = api.post("/accounts", {"name": "different"}, headers={"Idempotency-Key": key})
    assert other.status_code == 422


def test_rep_cannot_see_another_territorys_records_anywhere(world: World) -> None:
    mine = _account(world, "rep1", name=f"Mine {uuid.uuid4().hex[:6]}")
    theirs = _account(world, "rep2", name=f"Theirs {uuid.uuid4().hex[:6]}")
    rep1, rep2, mgr, admin = (
        world.api("rep1"),
        world.api("rep2"),
        world.api("manager"),
        world.api("admin"),
    )
    # by id: 404 (not 403), so existence does not leak
    assert rep1.get(f"/accounts/{theirs['id']}").status_code == 404
    assert (
        rep1.patch(
            f"/accounts/{theirs['id']}", {"health_score": 1}, headers={"If-Match": "*"}
        ).status_code
        == 404
    )
    assert rep1.delete(f"/accounts/{theirs['id']}", headers={"If-Match": "*"}).status_code == 404
    assert rep1.get(f"/accounts/{theirs['id']}/timeline").status_code == 404
    assert rep1.get(f"/accounts/{theirs['id']}/audit").status_code == 404
    assert rep1.get(f"/accounts/{theirs['id']}/rollup").status_code == 404
    # lists, totals and search
    ids = {a["id"] for a in rep1.get("/accounts", params={"limit": 500}).json()["items"]}
    assert mine["id"] in ids and theirs["id"] not in ids
    assert rep1.get("/accounts", params={"q": theirs["name"], "total": "true"}).json()["total"] == 0
    assert rep2.get("/accounts", params={"q": theirs["name"], "total": "true"}).json()["total"] == 1
    # linking to an invisible record is refused as an unknown reference
    r = rep1.post("/opportunities", {"name": "steal", "account_id": theirs["id"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "account_id"
    # a rep may not create records for another territory
    assert (
        rep1.post(
            "/accounts", {"name": "x", "territory_id": world.t2, "owner_id": world.users["rep2"]}
        ).status_code
        == 403
    )
    # the manager sees the team's territory, not the other; the admin sees both
    assert mgr.get(f"/accounts/{mine['id']}").status_code == 200
    assert mgr.get(f"/accounts/{theirs['id']}").status_code == 404
    assert admin.get(f"/accounts/{theirs['id']}").status_code == 200


def test_rep_sees_records_they_own_outside_their_territory(world: World) -> None:
    acc = _account(world, "admin", territory_id=world.t2, owner_id=world.users["rep1"])
    assert world.api("rep1").get(f"/accounts/{acc['id']}").status_code == 200


def test_viewer_reads_but_cannot_write(world: World) -> None:
    acc = _account(world, "rep1")
    viewer = world.api("viewer")
    assert viewer.get(f"/accounts/{acc['id']}").status_code == 200
    assert viewer.post("/accounts", {"name": "v"}).status_code == 403
    assert world.api("rep1").post("/territories", {"name": "nope"}).status_code == 403


def test_every_field_change_is_audited_with_actor(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world, "rep1", health_score=50)
    api.patch(
        f"/accounts/{acc['id']}",
        {"health_score": 60, "address": "1 Road"},
        headers={"If-Match": '"*"'.strip('"')},
    )
    entries = api.get(f"/accounts/{acc['id']}/audit").json()["items"]
    changes = {
        e["field"]: (e["old_value"], e["new_value"], e["actor_id"])
        for e in entries
        if e["action"] == "update"
    }
    assert changes["health_score"] == (50, 60, world.users["rep1"])
    assert changes["address"] == (None, "1 Road", world.users["rep1"])
    assert any(e["action"] == "insert" for e in entries)


def test_hierarchy_refuses_cycles_and_rolls_up_revenue_and_open_opportunities(world: World) -> None:
    api = world.api("admin")
    root = _account(world, "admin", annual_revenue=100)
    child = _account(world, "admin", annual_revenue=50, parent_id=root["id"])
    grandchild = _account(world, "admin", annual_revenue=25, parent_id=child["id"])
    r = api.patch(
        f"/accounts/{root['id']}", {"parent_id": grandchild["id"]}, headers={"If-Match": "*"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "parent_id"
    r = api.patch(f"/accounts/{root['id']}", {"parent_id": root["id"]}, headers={"If-Match": "*"})
    assert r.status_code == 422
    api.post("/opportunities", {"name": "o1", "account_id": grandchild["id"], "amount": 1000})
    api.post("/opportunities", {"name": "o2", "account_id": child["id"], "amount": 500})
    roll = api.get(f"/accounts/{root['id']}/rollup").json()
    assert roll["accounts"] == 3 and roll["annual_revenue"] == 175
    assert roll["open_opportunities"] == 2 and roll["open_amount"] == 1500
    assert api.get(f"/accounts/{child['id']}/rollup").json()["open_amount"] == 1000 + 500
    # amounts in two currencies are figures per currency, never one sum
    api.post(
        "/opportunities",
        {"name": "o3", "account_id": child["id"], "amount": 700, "currency": "EUR"},
    )
    roll = api.get(f"/accounts/{root['id']}/rollup").json()
    usd = next(x["currency"] for x in roll["annual_revenue_by_currency"])
    assert roll["annual_revenue_by_currency"] == [{"currency": usd, "amount": 175}]
    by_cur = {x["currency"]: x["amount"] for x in roll["open_amount_by_currency"]}
    assert by_cur["EUR"] == 700 and sum(by_cur.values()) == 1500 + 700


def test_opportunity_probability_defaults_from_stage_and_history_is_kept(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world, "rep1")
    opp = api.post(
        "/opportunities", {"name": "Deal", "account_id": acc["id"], "amount": 1000}
    ).json()
    assert opp["probability"] == 10 and opp["status"] == "open" and opp["territory_id"] == world.t1
    stages = (
        world.api("admin")
        .get(
            "/pipeline_stages",
            params={
                "filter": json.dumps(
                    {"field": "pipeline_id", "op": "eq", "value": opp["pipeline_id"]}
                ),
                "sort": "position",
            },
        )
        .json()["items"]
    )
    proposal = next(s for s in stages if s["name"] == "Proposal")
    won = next(s for s in stages if s["is_won"])
    r = api.patch(
        f"/opportunities/{opp['id']}",
        {"stage_id": proposal["id"]},
        headers={"If-Match": f'"{opp["id"]}.{opp["version"]}"'},
    )
    assert r.json()["probability"] == 50 and not r.json()["probability_is_override"]
    r = api.patch(
        f"/opportunities/{opp['id']}", {"probability": 65}, headers={"If-Match": etag_of(r)}
    )
    assert r.json()["probability"] == 65 and r.json()["probability_is_override"]
    r = api.patch(
        f"/opportunities/{opp['id']}", {"stage_id": won["id"]}, headers={"If-Match": etag_of(r)}
    )
    assert r.json()["status"] == "won" and r.json()["closed_at"] is not None
    hist = api.get(f"/opportunities/{opp['id']}/stage_history").json()["items"]
    assert [h["to_stage_id"] for h in hist][-2:] == [proposal["id"], won["id"]]


def test_lead_assignment_round_robin_within_territory_and_by_source(world: World) -> None:
    admin = world.api("admin")
    region = f"region-{uuid.uuid4().hex[:6]}"
    rule = admin.post(
        "/lead_assignment_rules",
        {"name": "rr", "priority": 1, "match_region": region, "match_territory_id": world.t1},
    )
    assert rule.status_code == 201, rule.text
    src = admin.post(
        "/lead_assignment_rules",
        {
            "name": "events",
            "priority": 2,
            "match_source": "event",
            "match_region": region,
            "strategy": "fixed",
            "assignee_ids": [world.users["rep2"]],
        },
    )
    assert src.status_code == 201
    owners = []
    for i in range(4):
        r = admin.post("/leads", {"last_name": f"L{i}", "region": region, "territory_id": world.t1})
        assert r.status_code == 201, r.text
        owners.append(r.json()["owner_id"])
        assert r.json()["assignment_rule_id"] == rule.json()["id"]
    # the territory has a manager and rep1: they alternate
    assert set(owners) == {world.users["manager"], world.users["rep1"]}
    assert owners[0] != owners[1] and owners[0] == owners[2]
    ev = admin.post("/leads", {"last_name": "E", "region": region, "source": "event"}).json()
    assert ev["owner_id"] == world.users["rep2"] and ev["assignment_rule_id"] == src.json()["id"]
    for rid in (rule.json()["id"], src.json()["id"]):
        admin.patch(f"/lead_assignment_rules/{rid}", {"active": False})


def test_lead_conversion_creates_account_contact_opportunity_in_one_go(world: World) -> None:
    api = world.api("rep1")
    lead = api.post(
        "/leads",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": f"Engines {uuid.uuid4().hex[:4]}",
            "email": "ada@engines.test",
            "phone": "+44 (20) 7946-0000",
            "estimated_amount": 5000,
            "owner_id": world.users["rep1"],
        },
    ).json()
    assert lead["phone_normalized"] == "+442079460000"
    act = api.post(
        "/activities", {"type": "call", "subject": "intro", "lead_id": lead["id"]}
    ).json()
    r = api.post(f"/leads/{lead['id']}/convert", {"opportunity": {"close_date": "2026-03-31"}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["lead"]["status"] == "converted"
    assert out["account"]["name"] == lead["company"]
    assert out["contact"]["email"] == "ada@engines.test"
    assert (
        out["opportunity"]["amount"] == 5000
        and out["opportunity"]["account_id"] == out["account"]["id"]
    )
    assert out["lead"]["conversion_mapping"]["account"]["name"] == "lead.company"
    assert out["lead"]["converted_opportunity_id"] == out["opportunity"]["id"]
    roles = api.get(f"/accounts/{out['account']['id']}/contacts").json()["items"]
    assert roles[0]["contact_id"] == out["contact"]["id"] and roles[0]["role"] == "primary"
    timeline = api.get(f"/accounts/{out['account']['id']}/timeline").json()["items"]
    assert act["id"] in [a["id"] for a in timeline]
    assert api.post(f"/leads/{lead['id']}/convert", {}).status_code == 409


def test_failed_conversion_leaves_nothing_behind(world: World) -> None:
    api = world.api("rep1")
    company = f"Atomic {uuid.uuid4().hex[:6]}"
    lead = api.post(
        "/leads", {"last_name": "X", "company": company, "owner_id": world.users["rep1"]}
    ).json()
    r = api.post(f"/leads/{lead['id']}/convert", {"opportunity": {"stage_id": 999999999}})
    assert r.status_code == 422
    assert api.get("/accounts", params={"q": company, "total": "true"}).json()["total"] == 0
    assert api.get(f"/leads/{lead['id']}").json()["status"] == "new"


def test_filter_language_with_custom_fields_nesting_and_totals(world: World) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    _account(world, "rep1", name=f"F{tag} a", custom={"tier": "gold", "seats": 10}, health_score=30)
    _account(
        world, "rep1", name=f"F{tag} b", custom={"tier": "silver", "seats": 50}, health_score=90
    )
    _account(world, "rep1", name=f"F{tag} c", custom={"seats": 5}, health_score=None)

    def count(flt: dict[str, Any]) -> int:
        node = {"and": [{"field": "name", "op": "contains", "value": f"F{tag}"}, flt]}
        r = api.get("/accounts", params={"filter": json.dumps(node), "total": "true"})
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert count({"field": "custom.tier", "op": "eq", "value": "gold"}) == 1
    assert count({"field": "custom.seats", "op": "gt", "value": 8}) == 2
    assert count({"field": "custom.tier", "op": "is_null", "value": True}) == 1
    assert (
        count(
            {
                "or": [
                    {"field": "health_score", "op": "lt", "value": 40},
                    {"field": "health_score", "op": "is_null", "value": True},
                ]
            }
        )
        == 2
    )
    assert count({"not": {"field": "custom.tier", "op": "in", "value": ["gold", "silver"]}}) == 1
    bad = api.get(
        "/accounts",
        params={"filter": json.dumps({"field": "password_hash", "op": "eq", "value": "x"})},
    )
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "filter"
    inj = api.get(
        "/accounts",
        params={
            "filter": json.dumps({"field": "name", "op": "eq", "value": "x' OR '1'='1"}),
            "total": "true",
        },
    )
    assert inj.json()["total"] == 0


def test_cursor_pages_walk_every_record_once_in_order(world: World) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    for i in range(7):
        _account(world, "rep1", name=f"P{tag} {i}", health_score=i % 3 if i != 6 else None)
    flt = json.dumps({"field": "name", "op": "contains", "value": f"P{tag}"})
    seen, cursor = [], None
    while True:
        params = {"filter": flt, "limit": 2, "sort": "-health_score"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/accounts", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len({a["id"] for a in seen}) == 7
    scores = [a["health_score"] for a in seen]
    assert scores[-1] is None and scores[:-1] == sorted(scores[:-1], reverse=True)
    assert "total" not in page


def test_timeline_lists_account_activities_newest_first(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world, "rep1")
    for day in (3, 1, 2):
        r = api.post(
            "/activities",
            {
                "type": "meeting",
                "subject": f"d{day}",
                "account_id": acc["id"],
                "start_at": f"2026-02-0{day}T09:00:00+01:00",
                "tz": "Europe/Berlin",
            },
        )
        assert r.status_code == 201, r.text
    items = api.get(f"/accounts/{acc['id']}/timeline").json()["items"]
    assert [a["subject"] for a in items] == ["d3", "d2", "d1"]


def test_work_order_status_lifecycle_is_enforced(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world, "rep1")
    wo = api.post(
        "/work_orders",
        {
            "account_id": acc["id"],
            "title": "Fix pump",
            "priority": "urgent",
            "required_skills": ["repair"],
            "source": "alert",
            "source_ref": uuid.uuid4().hex,
        },
    ).json()
    assert wo["status"] == "new" and wo["territory_id"] == world.t1
    r = api.patch(f"/work_orders/{wo['id']}", {"status": "done"}, headers={"If-Match": "*"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "status"
    for status in ("assigned", "in_progress", "done"):
        r = api.patch(
            f"/work_orders/{wo['id']}",
            {"status": status, "assignee_id": world.users["rep1"]},
            headers={"If-Match": "*"},
        )
        assert r.status_code == 200, r.text
    assert r.json()["completed_at"] is not None
    dup = api.post(
        "/work_orders",
        {
            "account_id": acc["id"],
            "title": "again",
            "source": "alert",
            "source_ref": wo["source_ref"],
        },
    )
    assert dup.status_code == 409


def test_contacts_dedupe_and_merge(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world, "rep1")
    email = f"dup-{uuid.uuid4().hex[:6]}@x.test"
    a = api.post("/contacts", {"first_name": "Jo", "email": email}).json()
    b = api.post(
        "/contacts", {"last_name": "Doe", "email": email.upper(), "phone": "030 1234"}
    ).json()
    api.put(f"/accounts/{acc['id']}/contacts", {"contact_id": b["id"], "role": "decision_maker"})
    groups = api.get("/contacts/duplicates").json()["items"]
    assert any(sorted(g["contact_ids"]) == sorted([a["id"], b["id"]]) for g in groups)
    merged = api.post(f"/contacts/{a['id']}/merge", {"merge_ids": [b["id"]]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["last_name"] == "Doe" and merged.json()["phone"] == "030 1234"
    assert api.get(f"/contacts/{b['id']}").status_code == 404
    roles = api.get(f"/accounts/{acc['id']}/contacts").json()["items"]
    assert [(r["contact_id"], r["role"]) for r in roles] == [(a["id"], "decision_maker")]


def test_pipeline_analytics_respect_access(world: World) -> None:
    admin, rep2 = world.api("admin"), world.api("rep2")
    acc = _account(world, "rep2")
    opp = rep2.post(
        "/opportunities",
        {
            "name": "A",
            "account_id": acc["id"],
            "amount": 1000,
            "close_date": "2031-05-10",
            "currency": "JPY",
        },
    ).json()
    fc = rep2.get(
        "/analytics/pipeline/forecast", params={"start": "2031-05-01", "end": "2031-06-01"}
    ).json()["items"]
    assert fc == [
        {
            "month": "2031-05",
            "currency": "JPY",
            "open_count": 1,
            "open_amount": 1000,
            "weighted_amount": 100,
            "won_amount": 0,
        }
    ]
    assert (
        world.api("rep1")
        .get("/analytics/pipeline/forecast", params={"start": "2031-05-01", "end": "2031-06-01"})
        .json()["items"]
        == []
    )
    stages = admin.get("/analytics/pipeline/stages").json()["items"]
    assert any(s["count"] > 0 for s in stages)
    stage_ids = [
        s["id"]
        for s in admin.get("/pipeline_stages", params={"sort": "position"}).json()["items"]
        if s["pipeline_id"] == opp["pipeline_id"]
    ]
    r = rep2.patch(
        f"/opportunities/{opp['id']}", {"stage_id": stage_ids[1]}, headers={"If-Match": "*"}
    )
    assert r.status_code == 200
    conv = rep2.get("/analytics/pipeline/conversion").json()["items"]
    first = next(c for c in conv if c["stage_id"] == stage_ids[0])
    assert first["entered"] >= 1 and first["advanced"] >= 1 and 0 < first["rate"] <= 1
    lost = next(
        s
        for s in admin.get("/pipeline_stages").json()["items"]
        if s["pipeline_id"] == opp["pipeline_id"] and s["is_lost"]
    )
    rep2.patch(f"/opportunities/{opp['id']}", {"stage_id": lost["id"]}, headers={"If-Match": "*"})
    owners = rep2.get("/analytics/pipeline/owners").json()["items"]
    mine = next(o for o in owners if o["owner_id"] == world.users["rep2"])
    assert mine["lost"] >= 1 and mine["win_rate"] is not None and mine["avg_cycle_days"] is not None
