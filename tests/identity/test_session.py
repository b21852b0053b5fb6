"""Session cookies: HttpOnly and SameSite, the CSRF header rule for unsafe requests,
logout revoking the session, and the Secure flag behind the setting."""

from __future__ import annotations

import requests

from kernel.settings import Settings
from tests.identity.conftest import Serve, Users, sign_in


def _session(base: str, email: str) -> tuple[requests.Session, requests.Response]:
    s = requests.Session()
    r = s.post(
        base + "/api/v1/auth/token",
        json={"email": email, "password": "right-pass-1", "session": True},
        timeout=60,
    )
    return s, r


def test_cookie_login_signs_in_gets_and_needs_the_csrf_header_for_writes(
    serve: Serve, users: Users
) -> None:
    with serve() as base:
        s, r = _session(base, users.email("rep"))
        assert r.status_code == 201, r.text
        assert r.json()["token"] is None  # the secret is only in the HttpOnly cookie
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("fm_session=")
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP and the setting off
        assert r.headers["Cache-Control"] == "no-store"

        me = s.get(base + "/api/v1/auth/me", timeout=10)
        assert me.status_code == 200 and me.json()["email"] == users.email("rep")

        refused = s.post(base + "/api/v1/auth/tokens", json={"name": "x"}, timeout=10)
        assert refused.status_code == 403
        assert "X-Requested-With" in refused.json()["error"]["message"]
        # a CRM write is refused the same way (the rule is the authenticator's)
        crm = s.post(base + "/api/v1/accounts", json={"name": "Cookie Co"}, timeout=10)
        assert crm.status_code == 403

        ok = s.post(
            base + "/api/v1/auth/tokens",
            json={"name": "from the console"},
            headers={"X-Requested-With": "fetch"},
            timeout=10,
        )
        assert ok.status_code == 201 and ok.json()["token"].startswith("fm_")
        kinds = {
            t["name"]: t["kind"]
            for t in s.get(base + "/api/v1/auth/tokens", timeout=10).json()["items"]
        }
        assert kinds == {"session": "session", "from the console": "api"}


def test_bearer_header_needs_no_csrf_header(serve: Serve, users: Users) -> None:
    with serve() as base:
        token = sign_in(base, users.email("rep")).json()["token"]
        r = requests.post(
            base + "/api/v1/auth/tokens",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 201


def test_logout_revokes_the_session(serve: Serve, users: Users) -> None:
    with serve() as base:
        s, _ = _session(base, users.email("rep"))
        stolen = s.cookies.get("fm_session")
        assert stolen
        no_header = s.post(base + "/api/v1/auth/logout", timeout=10)
        assert no_header.status_code == 403  # logout is unsafe too
        out = s.post(base + "/api/v1/auth/logout", headers={"X-Requested-With": "x"}, timeout=10)
        assert out.status_code == 204
        assert "fm_session=" in out.headers["Set-Cookie"]  # the browser forgets it
        # the session is revoked on the server: a copy of the cookie no longer works
        r = requests.get(base + "/api/v1/auth/me", cookies={"fm_session": stolen}, timeout=10)
        assert r.status_code == 401


def test_logout_with_a_bearer_token_revokes_that_token(serve: Serve, users: Users) -> None:
    with serve() as base:
        token = sign_in(base, users.email("rep")).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        assert requests.post(base + "/api/v1/auth/logout", headers=h, timeout=10).status_code == 204
        assert requests.get(base + "/api/v1/auth/me", headers=h, timeout=10).status_code == 401


def test_secure_cookie_behind_the_setting(
    serve: Serve, users: Users, test_settings: Settings
) -> None:
    with serve(settings=test_settings.with_overrides(secure_cookies=True)) as base:
        _, r = _session(base, users.email("rep"))
        assert "Secure" in r.headers["Set-Cookie"]


def test_the_app_installs_the_security_headers(serve: Serve) -> None:
    with serve() as base:
        r = requests.get(base + "/health", timeout=10)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
