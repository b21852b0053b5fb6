"""The insights models' lead score and win probability, with their top reasons, on the lead
and opportunity record pages (read from the insights endpoints)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from kernel.settings import Settings
from tests.console.test_crm_e2e import call, login


def test_lead_and_deal_pages_show_the_models_scores_with_their_reasons(
    console_url: str,
    admin: dict[str, Any],
    test_settings: Settings,
    run_scenario: Callable[..., dict[str, Any]],
) -> None:
    tok = login(console_url, admin)
    lead = call(
        console_url, "POST", "/api/v1/leads", {"last_name": "Scored", "company": "S Co"}, tok
    )
    bare = call(console_url, "POST", "/api/v1/leads", {"last_name": "Bare", "company": "B Co"}, tok)
    acct = call(console_url, "POST", "/api/v1/accounts", {"name": "Scored account"}, tok)
    opp = call(
        console_url,
        "POST",
        "/api/v1/opportunities",
        {"name": "Scored deal", "account_id": acct["id"], "amount": 100, "currency": "EUR"},
        tok,
    )
    reasons = [
        {"feature": "source", "value": "referral", "contribution": 0.9},
        {"feature": "days_since_created", "value": "40", "contribution": -0.4},
    ]
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        # what the insights models store once trained (written here: no model in this world)
        for entity, rid, model, score, prob in (
            ("leads", lead["id"], "lead-score", 81, 0.81),
            ("opportunities", opp["id"], "opportunity-win", 64, 0.64),
        ):
            conn.execute(
                "INSERT INTO insights_score (entity, record_id, model, model_version, probability,"
                " score, reasons) VALUES (%s, %s, %s, 'v7', %s, %s, %s::jsonb)"
                " ON CONFLICT (entity, record_id, model) DO UPDATE SET score = excluded.score,"
                " probability = excluded.probability, reasons = excluded.reasons,"
                " model_version = excluded.model_version",
                (entity, rid, model, prob, score, json.dumps(reasons)),
            )
        conn.execute(
            "DELETE FROM insights_score WHERE entity = 'leads' AND record_id = %s", (bare["id"],)
        )
    r = run_scenario(
        "scores",
        console_url,
        {"user": admin, "leadId": lead["id"], "oppId": opp["id"], "unscoredLeadId": bare["id"]},
    )
    assert r["lead"]["score"] == "81" and "81 / 100" in r["lead"]["text"]
    assert "81 % likely to convert" in r["lead"]["text"] and "model v7" in r["lead"]["text"]
    # the strongest reason first, in words, with its direction
    assert r["lead"]["reasons"] == ["▲ Source: referral", "▼ Days since created: 40"]
    assert r["win"]["probability"] == "64" and "by its stage" in r["win"]["text"]
    assert r["win"]["reasons"][0] == "▲ Source: referral"
    assert "Not scored yet" in r["unscored"]
    assert r["errors"] == [] and r["bad"] == []
