"""Values of the right type that no real record holds (a deal closing in year 1, a phone
number of two digits) answer 422 naming the field and the rule (crm.entities' plausibility
limits), on create and on change, in JSON and in CSV imports (the line and field named,
the good rows kept); /meta/entities and the OpenAPI document state the limits."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from crm.entities import PHONE_RULE
from tests.crm.conftest import World, etag_of
from tests.crm.test_csv import _import

WINDOW = "must be between 1900-01-01 and 2200-12-31"


def _implausible(r: requests.Response, field: str) -> str:
    assert r.status_code == 422, (r.status_code, r.text)
    err: dict[str, Any] = r.json()["error"]
    assert (err["field"], err["code"]) == (field, "implausible"), err
    assert err["message"].startswith(f"{field}: "), err
    return str(err["message"])


def test_dates_and_times_outside_the_window_are_422_naming_the_rule(world: World) -> None:
    api = world.api("rep1")
    acct = api.post("/accounts", {"name": f"Plausible {uuid.uuid4().hex[:6]}"}).json()
    deal = {"name": "Deal", "account_id": acct["id"]}
    for day in ("0001-01-01", "1899-12-31", "2201-01-01", "9999-12-31"):
        r = api.post("/opportunities", {**deal, "close_date": day})
        assert WINDOW in _implausible(r, "close_date")
    # the first and last days a timestamp can hold break the window's rule too, not a
    # storage bound a person cannot act on
    for at in (
        "0001-01-01T09:00:00Z",
        "0001-01-02T00:00:00Z",
        "1850-06-01T09:00:00+02:00",
        "9999-01-01T00:00:00Z",
        "9999-12-31T09:00:00Z",
    ):
        r = api.post("/activities", {"type": "task", "subject": "s", "due_at": at})
        assert WINDOW in _implausible(r, "due_at")
    r = api.post("/accounts", {"name": "Visited", "last_visit_at": "1066-10-14T09:00:00Z"})
    _implausible(r, "last_visit_at")
    r = api.post(
        "/work_orders",
        {
            "account_id": acct["id"],
            "title": "t",
            "time_windows": [{"start": "2026-01-01T08:00:00Z", "end": "2999-01-01T08:00:00Z"}],
        },
    )
    _implausible(r, "time_windows")

    # the edges are in; a time on the window's last day somewhere is judged in UTC
    r = api.post("/opportunities", {**deal, "close_date": "1900-01-01"})
    assert r.status_code == 201, r.text
    opp = r.json()
    r = api.post("/opportunities", {**deal, "close_date": "2200-12-31"})
    assert r.status_code == 201, r.text
    r = api.post(
        "/activities", {"type": "task", "subject": "s", "due_at": "2200-12-31T23:30:00-01:00"}
    )
    _implausible(r, "due_at")  # 2201-01-01 in UTC

    # a change is held to the same window, and nothing is written
    path = f"/opportunities/{opp['id']}"
    r = api.patch(path, {"close_date": "0001-01-01"}, headers={"If-Match": etag_of(api.get(path))})
    _implausible(r, "close_date")
    assert api.get(path).json()["close_date"] == "1900-01-01"


def test_phone_numbers_must_look_like_one(world: World) -> None:
    api = world.api("rep1")
    good = ["+44 (20) 7946-0000", "030 1234", "555.123.4567 ext. 89", "+1 555 123 4567 x12"]
    bad = ["12", "call me", "12345abc", "1" * 30, "+33 6 12 34 56 78 90 12 34 56 78", "++12345"]
    for phone in good:
        r = api.post("/contacts", {"last_name": "Phone", "phone": phone})
        assert r.status_code == 201, (phone, r.text)
    for phone in bad:
        r = api.post("/contacts", {"last_name": "Phone", "phone": phone})
        assert PHONE_RULE in _implausible(r, "phone"), phone
        r = api.post("/leads", {"last_name": "Phone", "phone": phone})
        _implausible(r, "phone")
    lead = api.post("/leads", {"last_name": "Phone", "phone": "0301234567"}).json()
    path = f"/leads/{lead['id']}"
    r = api.patch(path, {"phone": "12"}, headers={"If-Match": etag_of(api.get(path))})
    _implausible(r, "phone")
    r = api.patch(path, {"phone": None}, headers={"If-Match": etag_of(api.get(path))})
    assert r.status_code == 200, r.text  # clearing it is fine


def test_an_import_names_the_line_and_field_of_implausible_values_and_keeps_the_rest(
    world: World,
) -> None:
    api = world.api("rep1")
    tag = uuid.uuid4().hex[:6]
    text = (
        "first_name,last_name,email,phone\n"
        f"Ann,Good,ann-{tag}@x.test,+49 30 1111\n"  # line 2: kept
        f"Bob,Bad,bob-{tag}@x.test,12\n"  # line 3: two digits
        f"Cy,Bad,cy-{tag}@x.test,phone me\n"  # line 4: letters
        f"Di,Good,di-{tag}@x.test,\n"  # line 5: no phone is fine
    )
    job = _import(api, "contacts", "email", text)
    assert (job["inserted_rows"], job["failed_rows"]) == (2, 2), job
    errors = api.get(f"/imports/{job['id']}/errors").json()["items"]
    assert [(e["line_no"], e["field"]) for e in errors] == [(3, "phone"), (4, "phone")]
    assert all(PHONE_RULE in e["message"] for e in errors), errors
    found = api.get("/contacts", params={"q": tag, "limit": 50}).json()["items"]
    assert sorted(c["first_name"] for c in found) == ["Ann", "Di"]


def test_the_limits_are_stated_in_the_meta_and_the_openapi_document(world: World) -> None:
    api = world.api("rep1")
    meta = {e["name"]: e for e in api.get("/meta/entities").json()["items"]}
    close = next(f for f in meta["opportunities"]["fields"] if f["name"] == "close_date")
    assert (close["earliest"], close["latest"]) == ("1900-01-01", "2200-12-31")
    phone = next(f for f in meta["contacts"]["fields"] if f["name"] == "phone")
    assert phone["format"] == "phone" and PHONE_RULE in phone["description"]
    doc = requests.get(world.url + "/api/v1/openapi.json", timeout=30).json()
    schema = doc["components"]["schemas"]["OpportunityCreate"]["properties"]["close_date"]
    assert WINDOW in str(schema)
