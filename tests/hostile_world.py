"""Territory 2's world for the hostile requests: one record of every kind of tenant data a
territory-1 user must not see, made through the API as territory 2's rep (rep2), or by
the admin where only admins make it, for territory 2 or rep2. Every text field that can
carries the marker, so that a 2xx showing it to rep1 or territory 1's manager is a leak.

`seed(url, people, marker, sms_key)` answers a `World`: its `ids` are the map
`tests/hostile.py` takes (a collection's path prefix to the id of its territory-2 record,
used for the path parameters of the operations under that prefix); the rest is what
territory 2's devices need to report over MQTT (tests/hostile_live.py): the equipment's
key and broker credentials from its enrolment, and rep2's phone's connection."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import requests

from edge_agent.enrol import enrolment_request
from edge_agent.signing import DeviceKey
from tests.world import Api, People

EQUIPMENT_MODEL = "hostile-unit-h19"  # the enrolled device's: rules on it are fleet-wide
PHONE = "+4930123457"  # territory 2's contact's phone, its SMS conversation's sender
# a 1x1 PNG (a signature, an attachment)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@dataclass
class World:
    ids: dict[str, Any]  # path prefix -> a territory-2 record's id (or several)
    account: int  # territory 2's account, every other record's
    device: DeviceKey  # the equipment enrolled at the account (its id carries the marker)
    enrolment: dict[str, Any]  # the enrolment's answer: the device's broker credentials
    phone: dict[str, Any]  # rep2's phone as registered: its broker connection


def enrol(url: str, admin: Api, account: int, key: DeviceKey, equipment_model: str) -> Any:
    """`key`'s device enrolled at `account` as a site's device joins: with a token an admin
    issued for the account; the enrolment's answer (broker account, asset)."""
    r = admin.post("/enrolment-tokens", {"account_id": account})
    assert r.status_code in (200, 201), ("enrolment token", r.status_code, r.text[:500])
    r = requests.post(
        f"{url}/api/v1/device-enrolments",
        json=enrolment_request(key, r.json()["token"], equipment_model=equipment_model),
        timeout=30,
    )
    assert r.status_code in (200, 201), ("enrolment", r.status_code, r.text[:500])
    return r.json()


def seed(url: str, people: People, marker: str, sms_key: str) -> World:
    rep2 = people.users["rep2"]
    apis = {who: people.api(url, who) for who in ("rep2", "admin")}
    ids: dict[str, Any] = {}

    def made(r: requests.Response, what: str) -> dict[str, Any]:
        assert r.status_code in (200, 201, 202), (what, r.status_code, r.text[:500])
        return dict(r.json())

    def make(path: str, body: dict[str, Any], who: str = "rep2", key: str = "id") -> Any:
        got = made(apis[who].post(path, body), path)
        if key not in got:  # {"link": {...}, "token": ...}
            got = next(v for v in got.values() if isinstance(v, dict))
        ids[f"/api/v1{path}"] = got[key]
        return ids[f"/api/v1{path}"]

    def alias(prefix: str, of: str) -> None:
        ids[f"/api/v1{prefix}"] = ids[f"/api/v1{of}"]

    # CRM records: made first in a fresh database, these are also the records id 1 names
    # elsewhere
    account = make(
        "/accounts",
        {
            "name": f"{marker} account",
            "address": f"{marker} street 1",
            "location": {"type": "Point", "coordinates": [13.40, 52.52]},
        },
    )
    contact = make(
        "/contacts",
        {
            "last_name": marker,
            "owner_id": rep2,
            "email": f"{marker.lower()}@x.test",
            "phone": PHONE,
        },
    )
    lead = make("/leads", {"first_name": "Lea", "last_name": f"Lead{marker}", "owner_id": rep2})
    make("/opportunities", {"name": f"{marker} deal", "account_id": account, "amount": 1000})
    activity = make(
        "/activities",
        {"subject": f"{marker} call", "type": "call", "account_id": account},
    )
    work_order = make(
        "/work_orders",
        {
            "account_id": account,
            "title": f"{marker} repair",
            "description": f"{marker} details",
            "assignee_id": rep2,
            "owner_id": rep2,
        },
    )
    make(
        "/assets",
        {"account_id": account, "equipment_model": f"{marker} pump", "serial": f"{marker}-1"},
    )
    # a device enrolled for the account (a token only managers issue), on the asset; its
    # equipment model is fleet-wide (alert rules, which every user reads, name it): no marker
    key = DeviceKey.generate(f"{marker}-dev")  # the id carries the marker
    enrolment = enrol(url, apis["admin"], account, key, EQUIPMENT_MODEL)
    device = key.device_id
    ids["/api/v1/devices"] = ids["/ar/assets"] = ids["/api/v1/geo/subjects"] = device
    make(
        "/geo/fences",
        {
            "name": f"{marker} fence",
            "geometry": {"type": "Point", "coordinates": [13.40, 52.52]},
            "radius_m": 200,
            "account_id": account,
        },
        who="admin",
    )
    # engage: an e-mail to the contact, an SMS from the contact (its conversation) with a
    # note mentioning rep2 (a notification)
    made(
        apis["admin"].post(
            "/engage/mailboxes",
            {"address": f"rep2-{marker.lower()}@x.test", "owner_user_id": rep2},
        ),
        "mailbox",
    )
    make(
        "/engage/emails",
        {
            "idempotency_key": uuid.uuid4().hex,
            "contact_id": contact,
            "subject": f"{marker} offer",
            "html": f"<p>{marker} body</p>",
        },
    )
    sms = requests.get(
        f"{url}/engage/sms/inbound",
        params={
            "key": sms_key,
            "text": f"{marker} sms",
            "id": uuid.uuid4().hex[:20],
            "from": PHONE,
            "to": "+4930999",
        },
        timeout=30,
    )
    made(sms, "inbound sms")
    threads = apis["rep2"].get("/engage/conversations").json()
    conversation = int(threads[0]["id"])
    ids["/api/v1/engage/conversations"] = conversation
    made(
        apis["admin"].post(
            f"/engage/conversations/{conversation}/notes", {"body": f"{marker} note @rep2-hostile"}
        ),
        "note",
    )
    # calendar: rep2's booking link, a reminder on the activity, a feed, a booking of a
    # resource (made by the admin)
    make("/calendar/booking-links", {"title": f"{marker} visit", "account_id": account})
    make("/calendar/reminders", {"offset_min": 15, "activity_id": activity})
    make("/calendar/feeds", {"name": f"{marker} feed"}, key="id")
    resource = make(
        "/calendar/resources",
        {"name": f"{marker} van", "kind": "vehicle", "territory_id": people.t2},
        who="admin",
    )
    make(
        "/calendar/bookings",
        {
            "resource_id": resource,
            "start": "2027-03-01T09:00:00Z",
            "end": "2027-03-01T10:00:00Z",
            "title": f"{marker} booking",
        },
    )
    # rep2's own list view, report and dashboard (not shared)
    make("/views", {"entity": "accounts", "name": f"{marker} view", "params": {"q": marker}})
    report = make(
        "/reports",
        {
            "name": f"{marker} report",
            "description": f"{marker} description",
            "definition": {"entity": "accounts", "columns": ["name"]},
        },
    )
    make("/dashboards", {"name": f"{marker} dashboard", "tiles": [{"report_id": report}]})
    # automation: rep2's workflow and a run of it
    workflow = make(
        "/automation/workflows",
        {
            "definition": {
                "name": f"{marker} flow",
                "trigger": {"on": "leads.created"},
                "steps": [
                    {
                        "id": "n",
                        "action": "notify",
                        "to": ["record_owner"],
                        "title": f"{marker} step",
                    }
                ],
            }
        },
    )
    alias("/automation/sequences", "/automation/workflows")
    make(
        f"/automation/workflows/{workflow}/runs",
        {"record_object": "leads", "record_id": lead},
        key="run_id",
    )
    ids["/api/v1/automation/runs"] = ids.pop(f"/api/v1/automation/workflows/{workflow}/runs")
    # rep2's quota (set by the admin), phone, field report and attachment
    quota = made(
        apis["admin"].put(
            "/quotas",
            {
                "user_id": rep2,
                "period_start": "2027-01-01",
                "period_end": "2027-03-31",
                "amount": 5000,
                "currency": "EUR",
            },
        ),
        "quota",
    )
    ids["/api/v1/quotas"] = int(quota["id"])
    phone = made(apis["rep2"].post("/phone/devices", {"label": f"{marker} phone"}), "phone")
    ids["/api/v1/phone/devices"] = phone["device_id"]
    make(
        "/phone/reports",
        {
            "work_order_id": work_order,
            "signer_name": f"{marker} signer",
            "signature_png": base64.b64encode(PNG).decode(),
        },
    )
    attachment = apis["rep2"].post(
        "/phone/attachments",
        params={"filename": f"{marker}.png", "work_order_id": work_order},
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    ids["/api/v1/phone/attachments"] = made(attachment, "attachment")["id"]
    for prefix in ("/calendar/working-hours", "/calendar/sync"):
        ids[f"/api/v1{prefix}"] = rep2
    # territory 2's route plan (queued for the solver) and AR share link, made by the admin
    make("/routing/plans", {"date": "2027-03-01", "territory_id": people.t2}, who="admin")
    territory = f"south-{people.suffix}"
    ids["/ar/territories"] = territory
    make("/ar/shares", {"territory": territory, "note": f"{marker} share"}, who="admin")
    # rep2's list export and an import whose refused row shows the marker
    make("/exports", {"entity": "accounts"})
    csv = f"name,annual_revenue\n{marker} imported,12\n{marker} refused,x\n".encode()
    imported = apis["rep2"].post(
        "/imports",
        params={"entity": "accounts", "key": "name", "filename": f"{marker}.csv"},
        data=csv,
        headers={"Content-Type": "text/csv"},
    )
    ids["/api/v1/imports"] = made(imported, "import")["id"]
    # the assistant: rep2 has it log a call (an action rep2 may undo)
    said = made(
        apis["rep2"].post(
            "/assistant/messages",
            {"text": f"log a call with Tess {marker} about the {marker} quote", "confirm": True},
        ),
        "assistant",
    )
    actions = apis["rep2"].get("/assistant/actions").json()
    assert actions["items"], said
    ids["/api/v1/assistant/actions"] = int(actions["items"][0]["id"])
    # the mention in the conversation's note is rep2's notification
    notes = apis["rep2"].get("/notifications").json()
    ids["/api/v1/notifications"] = int(notes["items"][0]["notification_id"])
    for prefix, collection in (
        ("/insights/accounts", "/accounts"),
        ("/insights/leads", "/leads"),
        ("/insights/opportunities", "/opportunities"),
        ("/engage/contacts", "/contacts"),
        ("/calendar/events", "/activities"),
        ("/calendar/meetings", "/activities"),
    ):
        alias(prefix, collection)
    return World(ids, account, key, enrolment, phone)
