"""A user sees and changes their own time zone (PATCH /api/v1/auth/me), whatever their role;
a name that is no IANA time zone is refused naming the field, and nothing is written."""

from __future__ import annotations

import psycopg
import pytest
import requests

from tests.identity.conftest import Serve, Users, sign_in


@pytest.mark.parametrize("role", ["rep", "admin"])
def test_a_user_changes_their_own_time_zone(
    serve: Serve, users: Users, db: psycopg.Connection, role: str
) -> None:
    with serve() as base:
        r = sign_in(base, users.email(role))
        assert r.status_code == 201, r.text
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        me = requests.get(base + "/api/v1/auth/me", headers=auth, timeout=10).json()
        assert me["timezone"] == "UTC" and me["email"] == users.email(role)

        r = requests.patch(
            base + "/api/v1/auth/me", json={"timezone": "Europe/Paris"}, headers=auth, timeout=10
        )
        assert r.status_code == 200, r.text
        assert r.json()["timezone"] == "Europe/Paris"
        me = requests.get(base + "/api/v1/auth/me", headers=auth, timeout=10).json()
        assert me["timezone"] == "Europe/Paris"

        for bad in ("Mars/Olympus", "Europe/Pariss", "utc+2", "", "x" * 65):
            r = requests.patch(
                base + "/api/v1/auth/me", json={"timezone": bad}, headers=auth, timeout=10
            )
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["error"]["field"] == "timezone", r.text
        r = requests.patch(
            base + "/api/v1/auth/me", json={"timezone": "Asia/Tokyo", "role": "admin"},
            headers=auth, timeout=10,
        )  # fmt: skip
        assert r.status_code == 422  # nothing but the own settings may change here
        row = db.execute(
            "SELECT timezone, role FROM users WHERE id = %s", (users.ids[role],)
        ).fetchone()
        db.commit()
        assert row == ("Europe/Paris", role)

        anon = requests.patch(base + "/api/v1/auth/me", json={"timezone": "UTC"}, timeout=10)
        assert anon.status_code == 401
