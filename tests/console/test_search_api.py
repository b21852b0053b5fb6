"""The global search API: typo-tolerant, ranked, scoped by record-level access, bad input
answered 4xx."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from kernel.settings import Settings
from tests.console.conftest import make_user
from tests.console.test_crm_e2e import call, login
from tests.console.test_records_e2e import territory


def search(base: str, tok: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = call(
        base, "GET", "/console/api/search?" + urllib.parse.urlencode(params), token=tok
    )["items"]
    return items


def test_search_finds_misspellings_ranked_and_only_what_the_caller_may_see(
    console_url: str, admin: dict[str, Any], test_settings: Settings
) -> None:
    mine, other = territory(test_settings.dsn), territory(test_settings.dsn)
    rep = make_user(test_settings.dsn, "rep", territory_id=mine)
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:5]
    seen = call(
        console_url,
        "POST",
        "/api/v1/contacts",
        {
            "first_name": "Bartholomew",
            "last_name": f"Quincey{tag}",
            "email": f"bq{tag}@x.test",
            "territory_id": mine,
        },
        tok,
    )
    unseen = call(
        console_url,
        "POST",
        "/api/v1/contacts",
        {"first_name": "Bartholomew", "last_name": f"Quincey{tag}", "territory_id": other},
        tok,
    )
    acct = call(
        console_url,
        "POST",
        "/api/v1/accounts",
        {"name": f"Quincey{tag} Holdings", "territory_id": mine},
        tok,
    )
    rep_tok = login(console_url, rep)
    hits = search(console_url, rep_tok, q=f"Bartolomew Quincy{tag}")
    ids = {(h["type"], int(h["id"])) for h in hits}
    assert ("contacts", seen["id"]) in ids and ("contacts", unseen["id"]) not in ids
    assert search(console_url, tok, q=f"bq{tag}@x.test")[0]["id"] == str(seen["id"])
    both = search(console_url, rep_tok, q=f"Quincey{tag}")
    assert {h["type"] for h in both} >= {"contacts", "accounts"}
    assert [h["score"] for h in both] == sorted((h["score"] for h in both), reverse=True)
    only = search(console_url, rep_tok, q=f"Quincey{tag}", types="accounts")
    assert [(h["type"], int(h["id"])) for h in only] == [("accounts", acct["id"])]


@pytest.mark.parametrize(
    "params", [{"q": ""}, {"q": "x", "types": "nope"}, {"q": "x" * 201}, {"q": "x", "limit": "0"}]
)
def test_bad_search_input_is_a_4xx(
    console_url: str, admin: dict[str, Any], params: dict[str, str]
) -> None:
    tok = login(console_url, admin)
    with pytest.raises(urllib.error.HTTPError) as err:
        search(console_url, tok, **params)
    assert 400 <= err.value.code < 500


def test_search_by_word_beginning_phone_digits_and_a_renamed_record(
    console_url: str, admin: dict[str, Any]
) -> None:
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    digits = str(int(tag, 16) % 10**7).zfill(7)
    made = call(
        console_url,
        "POST",
        "/api/v1/contacts",
        {"first_name": "Philippa", "last_name": f"Zebedee{tag}", "phone": f"+33 6 1{digits}"},
        tok,
    )
    # the beginning of a word, as typed so far
    assert str(made["id"]) in {h["id"] for h in search(console_url, tok, q=f"zebedee{tag[:4]}")}
    # the last digits of the phone number, written the national way
    hits = search(console_url, tok, q=f"06 1{digits}", types="contacts")
    assert [h["id"] for h in hits] == [str(made["id"])]
    # a new name is found at once (the lexicon learns on update), misspelt too
    url = f"{console_url}/api/v1/contacts/{made['id']}"
    auth = {"Authorization": f"Bearer {tok}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=30) as r:
        etag = r.headers["ETag"]
    patch = urllib.request.Request(
        url,
        data=json.dumps({"last_name": f"Wolstenholme{tag}"}).encode(),
        method="PATCH",
        headers={**auth, "If-Match": etag, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(patch, timeout=30) as r:
        assert r.status == 200
    assert str(made["id"]) in {
        h["id"] for h in search(console_url, tok, q=f"Philipa Wolstenhome{tag}")
    }


def test_a_deal_hit_reads_its_amount_as_people_write_it(
    console_url: str, admin: dict[str, Any]
) -> None:
    tok = login(console_url, admin)
    tag = uuid.uuid4().hex[:6]
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": f"Amount {tag}"}, tok)
    deals = {
        amount: call(
            console_url,
            "POST",
            "/api/v1/opportunities",
            {"name": f"Quetzal{tag} {i}", "account_id": acct["id"], **amount_body},
            tok,
        )["id"]
        for i, (amount, amount_body) in enumerate(
            (
                ("whole", {"amount": 33300, "currency": "EUR"}),
                ("cents", {"amount": 14400.5, "currency": "USD"}),
            )
        )
    }
    details = {
        h["id"]: h["detail"]
        for h in search(console_url, tok, q=f"quetzal{tag}", types="opportunities")
    }
    assert details[str(deals["whole"])] == "open · 33,300 EUR"
    assert details[str(deals["cents"])] == "open · 14,400.50 USD"
