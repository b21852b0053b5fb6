"""Consent by channel and purpose, and the data-subject export and erasure, over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import requests

from engage import send
from kernel.settings import Settings
from tests.engage.conftest import MailWorld, send_worker
from tests.eventually import eventually_async
from tests.world import People


def test_consent_export_and_erasure_of_a_contact(
    db_dsn: str, test_settings: Settings, people: People, app_url: str, mail_world: MailWorld
) -> None:
    w = mail_world
    h = people.headers("admin")
    api = f"{app_url}/api/v1/engage/contacts/{w.contact_id}"
    got = requests.get(f"{api}/consent", headers=h, timeout=30).json()
    marketing = next(c for c in got if c["channel"] == "email" and c["purpose"] == "marketing")
    assert marketing["granted"] is False and "opt-in" in marketing["source"]
    # marketing without an opt-in is refused with the reason
    body: dict[str, Any] = {
        "idempotency_key": "m1",
        "contact_id": w.contact_id,
        "subject": "Sale",
        "html": "<p>x</p>",
        "purpose": "marketing",
        "sender_mailbox_id": w.mailbox_id,
    }
    r = requests.post(f"{app_url}/api/v1/engage/emails", json=body, headers=h, timeout=30)
    assert r.status_code == 422 and "no consent to marketing email" in r.json()["error"]["message"]
    r = requests.put(
        f"{api}/consent",
        json={"channel": "email", "purpose": "marketing", "granted": True, "source": "web form"},
        headers=h,
        timeout=30,
    )
    assert r.status_code == 200
    r = requests.post(f"{app_url}/api/v1/engage/emails", json=body, headers=h, timeout=30)
    assert r.status_code == 202, r.text
    oid = r.json()["id"]

    async def sent() -> None:
        async with (
            send_worker(test_settings),
            await psycopg.AsyncConnection.connect(db_dsn) as conn,
        ):

            async def done() -> bool:
                st = await send.outbox_state(conn, oid)
                return st is not None and st["state"] == "sent"

            await eventually_async(done, what="the marketing e-mail sent")

    asyncio.run(sent())
    # bad input is a 4xx naming the field; another territory's rep cannot see the contact
    r = requests.put(
        f"{api}/consent",
        json={"channel": "fax", "purpose": "marketing", "granted": True},
        headers=h,
        timeout=30,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "channel"
    assert (
        requests.get(f"{api}/consent", headers=people.headers("rep2"), timeout=30).status_code
        == 404
    )
    # the journey shows the e-mail beside the CRM's records; analytics count it
    j = requests.get(f"{api}/journey", headers=h, timeout=30).json()
    assert [i["kind"] for i in j["items"] if i["channel"] == "email"] == ["email_out"]
    only_crm = requests.get(f"{api}/journey?channel=crm", headers=h, timeout=30).json()
    assert all(i["channel"] == "crm" for i in only_crm["items"])
    stats = requests.get(f"{app_url}/api/v1/engage/analytics", headers=h, timeout=30).json()
    assert any(c["channel"] == "email" and c["outbound"] >= 1 for c in stats["channels"])
    assert (
        requests.get(
            f"{app_url}/api/v1/engage/analytics", headers=people.headers("rep1"), timeout=30
        ).status_code
        == 403
    )
    export = requests.get(f"{api}/export", headers=h, timeout=30).json()
    assert export["contact"]["email"] == w.contact_address
    assert [e["subject"] for e in export["emails"]] == ["Sale"]
    assert [m["direction"] for m in export["messages"]] == ["out"]
    r = requests.delete(f"{api}/engagement", headers=h, timeout=30)
    assert r.status_code == 200, r.text
    erased = r.json()["erased"]
    assert erased["emails"] == 1 and erased["messages"] == 1 and erased["activities"] == 1
    after = requests.get(f"{api}/export", headers=h, timeout=30).json()
    assert after["emails"] == [] and after["messages"] == []
    # the erased address is never mailed again
    body["idempotency_key"] = "m2"
    r = requests.post(f"{app_url}/api/v1/engage/emails", json=body, headers=h, timeout=30)
    assert r.status_code == 422 and "erased" in r.json()["error"]["message"]
