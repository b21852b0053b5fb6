"""`fieldmesh users passwd EMAIL` reads the new password from stdin (not a terminal)."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from tests.identity.conftest import Serve, Users, sign_in


def _passwd(db_dsn: str, email: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_dsn}
    return subprocess.run(
        [sys.executable, "-m", "fieldmesh", "users", "passwd", email],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_passwd_sets_the_password_and_ends_sessions(
    serve: Serve, users: Users, db_dsn: str
) -> None:
    with serve() as base:
        session = sign_in(base, users.email("rep"), session=True)
        cookie = session.cookies.get("fm_session")
        assert cookie
        done = _passwd(db_dsn, users.email("rep"), "brand-new-pass\n")
        assert done.returncode == 0, done.stderr
        assert f"password set for {users.email('rep')}" in done.stdout
        assert sign_in(base, users.email("rep")).status_code == 401
        assert sign_in(base, users.email("rep"), "brand-new-pass").status_code == 201
        r = requests.get(base + "/api/v1/auth/me", cookies={"fm_session": cookie}, timeout=10)
        assert r.status_code == 401


def test_passwd_refuses_a_short_password_and_an_unknown_user(users: Users, db_dsn: str) -> None:
    short = _passwd(db_dsn, users.email("rep"), "short\n")
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr
    unknown = _passwd(db_dsn, f"nobody-{users.suffix}@id.test", "long-enough-1\n")
    assert unknown.returncode == 1
    assert "no user" in unknown.stderr
