"""Malformed requests to the CRM answer a 4xx in the one error shape, never a 5xx, and name
what is wrong: wrong JSON types, deep JSON, lone surrogates, NUL in strings and paths,
non-ASCII digits in ids, dates out of range, unknown references, too-long strings."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from tests.crm.conftest import World


def _account(world: World) -> dict[str, Any]:
    r = world.api("rep1").post("/accounts", {"name": f"Malformed {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _error(r: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"code", "message", "field"}
    if field is not None:
        assert err["field"] == field, err
    return err


def _raw_post(world: World, path: str, raw: bytes) -> requests.Response:
    api = world.api("rep1")
    return api.session.post(
        api.base + path, data=raw, headers={"Content-Type": "application/json"}, timeout=30
    )


def test_wrong_json_types_are_422_naming_the_field(world: World) -> None:
    api = world.api("rep1")
    _error(api.post("/accounts", {"name": ["not", "a", "string"]}), 422, "name")
    _error(api.post("/accounts", {"name": "x", "health_score": "80"}), 422, "health_score")
    _error(api.post("/accounts", {"name": "x", "custom": []}), 422, "custom")
    _error(api.post("/accounts", [1, 2]), 422)
    lead = api.post("/leads", {"last_name": "Types", "owner_id": world.users["rep1"]}).json()
    # a part of the conversion that is not an object (was a 400 without a field)
    _error(api.post(f"/leads/{lead['id']}/convert", {"account": []}), 422, "account")
    _error(api.post(f"/leads/{lead['id']}/convert", {"create_opportunity": "false"}), 422)
    # query parameters: a wrong type is a 422 too (was a 400)
    _error(api.get("/accounts", params={"limit": "many"}), 422, "limit")
    _error(api.get("/accounts", params={"total": "perhaps"}), 422, "total")


def test_deeply_nested_json_is_refused_before_parsing(world: World) -> None:
    deep = b'{"name": "deep", "custom": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    err = _error(_raw_post(world, "/accounts", deep), 400)
    assert err["code"] == "too_deep"


def test_lone_surrogates_are_refused(world: World) -> None:
    _error(_raw_post(world, "/accounts", b'{"name": "a\\ud800b"}'), 400)
    _error(_raw_post(world, "/accounts", b'{"name": "ok", "custom": {"k": "\\udfff"}}'), 400)


def test_nul_in_bodies_query_strings_and_paths_is_refused(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world)
    _error(api.post("/accounts", {"name": "a\x00b"}), 400)
    flt = json.dumps({"field": "custom.tier", "op": "eq", "value": "gold\x00"})
    _error(api.get("/accounts", params={"filter": flt}), 400, "filter")
    _error(api.get("/accounts", params={"sort": "\x00name"}), 400, "sort")
    _error(api.session.get(f"{api.base}/accounts/{acc['id']}%00", timeout=30), 400, "id")
    r = api.session.post(
        f"{api.base}/imports",
        params={"entity": "accounts", "key": "name", "filename": "a\x00.csv"},
        data=b"name\nA\n",
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    _error(r, 400, "filename")


def test_control_characters_in_text_fields_are_refused(world: World) -> None:
    api = world.api("rep1")
    _error(api.post("/accounts", {"name": "bell\x07"}), 422, "name")
    _error(api.post("/accounts", {"name": "ok", "custom": {"k\x1b": 1}}), 422, "custom")
    # tab and newlines are text
    r = api.post("/activities", {"type": "note", "subject": "s", "body": "a\tb\r\nc"})
    assert r.status_code == 201, r.text


def test_non_ascii_digits_do_not_name_a_record(world: World) -> None:
    api = world.api("rep1")
    acc = _account(world)
    arabic = str(acc["id"]).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert api.get(f"/accounts/{acc['id']}").status_code == 200
    _error(api.get(f"/accounts/{arabic}"), 404)
    _error(api.get("/accounts", params={"limit": "٥"}), 422, "limit")
    contact = api.post("/contacts", {"last_name": "Digits"}).json()
    _error(api.post(f"/contacts/{contact['id']}/merge", {"merge_ids": ["٢"]}), 422, "merge_ids.0")


def test_times_out_of_range_are_422(world: World) -> None:
    api = world.api("rep1")
    # stored as year 10000 in UTC, which no reader could load back
    r = api.post("/accounts", {"name": "late", "last_visit_at": "9999-12-31T23:00:00-05:00"})
    _error(r, 422, "last_visit_at")
    _error(api.post("/accounts", {"name": "late", "last_visit_at": "99999-01-01T00:00:00Z"}), 422)
    r = api.post(
        "/activities", {"type": "call", "subject": "s", "due_at": "0001-01-01T00:00:00+01:00"}
    )
    _error(r, 422, "due_at")
    _error(api.get("/analytics/pipeline/conversion", params={"end": "0001-01-01"}), 422, "start")
    _error(api.get("/analytics/pipeline/forecast", params={"start": "2026-13-45"}), 422, "start")


def test_unknown_references_are_422_naming_the_field(world: World) -> None:
    api = world.api("rep1")
    _error(api.post("/opportunities", {"name": "o", "account_id": 2**62}), 422, "account_id")
    lead = api.post("/leads", {"last_name": "Ref", "owner_id": world.users["rep1"]}).json()
    # was a 404, as if the lead did not exist
    r = api.post(f"/leads/{lead['id']}/convert", {"account_id": 2**62})
    _error(r, 422, "account_id")
    acc = _account(world)
    _error(api.put(f"/accounts/{acc['id']}/contacts", {"contact_id": 2**62}), 422, "contact_id")
    assert api.get(f"/leads/{lead['id']}").json()["status"] == "new"


def test_too_long_strings_are_refused(world: World) -> None:
    api = world.api("rep1")
    _error(api.post("/accounts", {"name": "x" * 301}), 422, "name")
    _error(api.get("/accounts", params={"q": "x" * 201}), 422, "q")
    _error(api.get("/accounts", params={"filter": "x" * 5000}), 400, "filter")
    r = api.post("/accounts", {"name": "ok"}, headers={"Idempotency-Key": "k" * 201})
    _error(r, 400, "Idempotency-Key")


def test_territory_rings_must_be_closed_polygons(world: World) -> None:
    admin = world.api("admin")
    open_ring = {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]}
    _error(admin.post("/territories", {"name": "t", "geom": open_ring}), 422, "geom")
    short = {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [0, 0]]]]}
    _error(admin.post("/territories", {"name": "t", "geom": short}), 422)


def test_invalid_utf8_in_a_json_string_is_a_400(world: World) -> None:
    err = _error(_raw_post(world, "/accounts", b'{"name": "\xc3("}'), 400)
    assert err["code"] == "invalid_json" and "UTF-8" in err["message"]


def test_a_constraint_checked_at_commit_is_a_409_not_a_500(world: World) -> None:
    """(pipeline_id, position) is unique DEFERRABLE INITIALLY DEFERRED: the duplicate is
    refused at COMMIT, after the handler's own error mapping (was a 500)."""
    admin = world.api("admin")
    pipeline = admin.post("/pipelines", {"name": f"Deferred {uuid.uuid4().hex[:6]}"})
    assert pipeline.status_code == 201, pipeline.text
    pid = pipeline.json()["id"]
    body = {"pipeline_id": pid, "name": "First", "position": 1, "probability": 10}
    assert admin.post("/pipeline_stages", body).status_code == 201
    err = _error(admin.post("/pipeline_stages", {**body, "name": "Second"}), 409)
    assert err["code"] == "duplicate" and "position" in err["message"]
