"""Who reaches an AR scene: signed-in users within their scope, customers through a signed,
expiring, revocable share link that opens its one scene (the real app over HTTP)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ar_viewer.shares import TOKEN_PATTERN, Share, share_key, sign
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.ar_viewer.people import make_token, make_user

pytestmark = pytest.mark.integration


@pytest.fixture
def served(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("ar_viewer.routes",)) as url:
        yield url


def _call(
    url: str, token: str | None = None, method: str = "GET", body: Any = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, dict(e.headers)
    ctype = hdrs.get("Content-Type", "")
    return status, hdrs, json.loads(raw) if "json" in ctype and raw else raw


def _world(dsn: str) -> dict[str, Any]:
    """Territories A and B with an account each; a rep and a manager in A, a manager in B."""
    tag = uuid.uuid4().hex[:8]
    w: dict[str, Any] = {"tag": tag}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for side, lon in (("a", 6.6), ("b", 7.4)):
            name = f"Share {side} {tag}"
            (tid,) = conn.execute(
                "INSERT INTO territories (name, geom) VALUES (%s, ST_GeogFromText(%s)) RETURNING id",
                (
                    name,
                    f"MULTIPOLYGON((({lon} 46.4, {lon + 0.2} 46.4, {lon + 0.2} 46.6, {lon} 46.6, {lon} 46.4)))",
                ),
            ).fetchone()  # type: ignore[misc]
            conn.execute(
                "INSERT INTO accounts (name, territory_id, location, annual_revenue, health_score)"
                " VALUES (%s, %s, ST_GeogFromText(%s), 250000, 80)",
                (f"Secret account {side} {tag}", tid, f"POINT({lon + 0.1} 46.5)"),
            )
            manager = make_user(conn, "manager", tid)
            w[side] = {
                "name": name,
                "id": tid,
                "manager": make_token(conn, manager)[1],
                "rep": make_token(conn, make_user(conn, "rep", tid, manager))[1],
            }
    return w


def _share(served: str, token: str, **body: Any) -> dict[str, Any]:
    status, _, out = _call(f"{served}/api/v1/ar/shares", token, "POST", body)
    assert status == 201, out
    return out  # type: ignore[no-any-return]


def test_anonymous_callers_get_no_scene_and_a_rep_only_their_territorys(
    served: str, test_settings: Settings
) -> None:
    w = _world(test_settings.dsn)
    a, b = (urllib.parse.quote(w[s]["name"]) for s in ("a", "b"))
    for path in ("/ar/territories", f"/ar/territories/{a}", f"/ar/territories/{a}/scene.json",
                 f"/ar/territories/{a}/scene.glb", "/ar/assets/some-pump", "/api/v1/ar/shares"):  # fmt: skip
        status, _, body = _call(f"{served}{path}")
        assert status == 401, path
        assert b"Secret account" not in json.dumps(body).encode()
    rep = w["a"]["rep"]
    status, _, body = _call(f"{served}/ar/territories", rep)
    assert status == 200 and w["a"]["name"] in body["territories"]
    assert w["b"]["name"] not in body["territories"]
    status, _, body = _call(f"{served}/ar/territories/{a}/scene.json", rep)
    assert status == 200 and body["stats"]["accounts_shown"] == 1
    assert _call(f"{served}/ar/territories/{b}", rep)[0] == 404
    assert _call(f"{served}/ar/territories/{b}/scene.json", rep)[0] == 404
    # a rep may not hand out links
    status, _, _ = _call(f"{served}/api/v1/ar/shares", rep, "POST", {"territory": w["a"]["name"]})
    assert status == 403


def test_a_share_link_opens_its_one_scene_with_security_headers_and_no_login(
    served: str, test_settings: Settings
) -> None:
    w = _world(test_settings.dsn)
    out = _share(
        served, w["a"]["manager"], territory=w["a"]["name"], expires_in_s=3600, note="for ACME"
    )
    assert out["share"]["state"] == "active" and out["share"]["territory"] == w["a"]["name"]
    link = out["url"]
    assert link.startswith(served + "/ar/s/") and out["token"] in link

    status, headers, html = _call(link)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = html.decode()
    assert f"Secret account a {w['tag']}" in page and f"Secret account b {w['tag']}" not in page
    assert "/api/v1/accounts/" not in page  # no links into the CRM for a customer
    assert f'src="/ar/s/{out["token"]}/scene.glb' in page
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'sha256-" in csp
    assert "blob:" in csp and "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "xr-spatial-tracking=(self)" in headers["Permissions-Policy"]

    status, headers, glb = _call(f"{link}/scene.glb")
    assert status == 200 and headers["Content-Type"] == "model/gltf-binary" and glb[:4] == b"glTF"
    status, _, info = _call(f"{link}/scene.json")
    assert status == 200 and info["stats"]["accounts_shown"] == 1

    # the link is no key to any other scene
    other = urllib.parse.quote(w["b"]["name"])
    assert _call(f"{served}/ar/territories/{other}")[0] == 401
    assert _call(f"{link}/../{other}")[0] == 404
    forged = out["token"][:-1] + ("A" if out["token"][-1] != "A" else "B")
    assert _call(f"{served}/ar/s/{forged}")[0] == 404
    b_out = _share(served, w["b"]["manager"], territory=w["b"]["name"])
    swapped = f"{b_out['share']['id']}.{out['token'].split('.', 1)[1]}"
    assert _call(f"{served}/ar/s/{swapped}/scene.json")[0] == 404


def test_managers_share_only_what_they_see_and_bad_requests_name_the_field(
    served: str, test_settings: Settings
) -> None:
    w = _world(test_settings.dsn)
    url, mgr = f"{served}/api/v1/ar/shares", w["a"]["manager"]
    status, _, body = _call(url, mgr, "POST", {"territory": w["b"]["name"]})
    assert status == 404 and body["error"]["field"] == "territory"
    status, _, body = _call(url, mgr, "POST", {"device_id": "pump-of-someone-else"})
    assert status == 404 and body["error"]["field"] == "device_id"
    for bad, field in (
        ({"territory": w["a"]["name"], "device_id": "x"}, "territory"),
        ({}, "territory"),
        ({"territory": w["a"]["name"], "expires_in_s": 10**9}, "expires_in_s"),
        ({"territory": w["a"]["name"], "expires_in_s": "soon"}, "expires_in_s"),
        ({"territory": w["a"]["name"], "metric": "profit"}, "metric"),
        ({"territory": w["a"]["name"], "admin": True}, None),
    ):
        status, _, body = _call(url, mgr, "POST", bad)
        assert status == 422, bad
        assert field is None or body["error"]["field"] == field, body


def test_revoked_and_expired_links_are_refused(served: str, test_settings: Settings) -> None:
    w = _world(test_settings.dsn)
    mgr = w["a"]["manager"]
    first = _share(served, mgr, territory=w["a"]["name"])
    second = _share(served, mgr, territory=w["a"]["name"], metric="pipeline")
    for out in (first, second):
        assert _call(f"{out['url']}/scene.json")[0] == 200

    # revoked: 410, also for the files; another team's manager cannot revoke it
    sid = first["share"]["id"]
    assert _call(f"{served}/api/v1/ar/shares/{sid}", w["b"]["manager"], "DELETE")[0] == 404
    assert _call(f"{served}/api/v1/ar/shares/{sid}", mgr, "DELETE")[0] == 204
    status, _, body = _call(first["url"])
    assert (
        status == 410 and body["error"]["code"] == "gone" and "revoked" in body["error"]["message"]
    )
    assert _call(f"{first['url']}/scene.glb")[0] == 410
    status, _, listed = _call(f"{served}/api/v1/ar/shares", mgr)
    states = {s["id"]: s["state"] for s in listed["items"]}
    assert states[sid] == "revoked" and states[second["share"]["id"]] == "active"
    status, _, other = _call(f"{served}/api/v1/ar/shares", w["b"]["manager"])
    assert sid not in {s["id"] for s in other["items"]}

    # expired: the row's expiry moves into the past; the link signed for it answers 410
    sid2 = second["share"]["id"]
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE ar_shares SET created_at = %s, expires_at = %s WHERE id = %s",
            (past - timedelta(days=1), past, sid2),
        )
    old = second["url"]
    assert _call(old)[0] == 404  # its MAC signed the old expiry: no longer a valid link
    share = Share(sid2, "territory", w["a"]["id"], w["a"]["name"], None, "pipeline", "", None,
                  past - timedelta(days=1), past, None)  # fmt: skip
    token = sign(share_key(test_settings), share)
    status, _, body = _call(f"{served}/ar/s/{token}/scene.json")
    assert status == 410 and "expired" in body["error"]["message"]
    status, _, listed = _call(f"{served}/api/v1/ar/shares", mgr)
    assert {s["id"]: s["state"] for s in listed["items"]}[sid2] == "expired"


def test_a_link_token_signs_every_field_that_names_the_scene(tmp_path: Any) -> None:
    key = share_key(Settings(state_dir=tmp_path))
    assert (
        share_key(Settings(state_dir=tmp_path)) == key
    )  # the deployment secret is made once, then reused
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    base = Share(
        7, "territory", 3, "North", None, "revenue", "", 1, t0, t0 + timedelta(days=7), None
    )
    token = sign(key, base)
    assert re.match(TOKEN_PATTERN, token) and token.startswith("7.")
    for changed in (
        replace(base, id=8),
        replace(base, territory_id=4),
        replace(base, metric="pipeline"),
        replace(base, expires_at=base.expires_at + timedelta(seconds=1)),
        replace(base, kind="asset", territory_id=None, device_id="3"),
    ):
        assert sign(key, changed).split(".")[1] != token.split(".")[1], changed
    assert (
        sign(share_key(Settings(state_dir=tmp_path / "other")), base) != token
    )  # another deployment
    # who made it and when it was revoked are not part of the scene: same link
    assert sign(key, replace(base, note="x", created_by=2)) == token
