"""Sign-in against the real app and database: tokens, throttling per account and per
source, the dummy hash for unknown e-mails, hashing off the event loop."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import requests
from argon2 import PasswordHasher

from identity.passwords import PasswordVerifier
from identity.throttle import ThrottlePolicy
from tests.eventually import eventually
from tests.identity.conftest import PASSWORD, RecordingHasher, Serve, Users, sign_in

STRICT = ThrottlePolicy(account_failures=3, source_failures=8, first_lock_s=30, max_lock_s=900)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_issues_a_token_and_a_revoked_token_stops_working(serve: Serve, users: Users) -> None:
    with serve() as base:
        assert sign_in(base, users.email("admin"), "wrong-pass").status_code == 401
        r = sign_in(base, users.email("admin"))
        assert r.status_code == 201, r.text
        body = r.json()
        me = requests.get(base + "/api/v1/auth/me", headers=_bearer(body["token"]), timeout=10)
        assert me.json()["role"] == "admin"
        assert me.json()["token_id"] == body["token_id"]
        gone = requests.delete(
            f"{base}/api/v1/auth/tokens/{body['token_id']}",
            headers=_bearer(body["token"]),
            timeout=10,
        )
        assert gone.status_code == 204
        again = requests.get(base + "/api/v1/auth/me", headers=_bearer(body["token"]), timeout=10)
        assert again.status_code == 401
        assert set(again.json()["error"]) == {"code", "message", "field"}


def test_wrong_body_types_are_422_naming_the_field(serve: Serve, users: Users) -> None:
    with serve() as base:
        r = requests.post(
            base + "/api/v1/auth/token",
            json={"email": users.email("rep"), "password": 5},
            timeout=10,
        )
        assert r.status_code == 422
        assert r.json()["error"]["field"] == "password"


def test_account_is_locked_with_429_and_retry_after_after_n_failures(
    serve: Serve, users: Users
) -> None:
    with serve(policy=STRICT) as base:
        email = users.email("rep")
        codes = [sign_in(base, email, "wrong-pass").status_code for _ in range(3)]
        assert codes == [401, 401, 429]  # the third failure starts the lock
        locked = sign_in(base, email)  # even the right password waits for the lock
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_requests"
        assert 1 <= int(locked.headers["Retry-After"]) <= 30
        # another account from the same source is not locked by this one
        assert sign_in(base, users.email("other")).status_code == 201


def test_lock_doubles_after_each_further_failure(db_dsn: str, users: Users) -> None:
    import asyncio

    from psycopg import AsyncConnection

    from identity import throttle

    async def go() -> list[float]:
        async with await AsyncConnection.connect(db_dsn) as conn:
            key = throttle.account_key(users.email("rep"))
            return [await throttle.record_failure(conn, [(key, 3)], STRICT) for _ in range(6)]

    assert asyncio.run(go()) == [0, 0, 30, 60, 120, 240]


def test_success_resets_the_account_counter(serve: Serve, users: Users) -> None:
    with serve(policy=STRICT) as base:
        email = users.email("rep")
        for _ in range(2):
            assert sign_in(base, email, "wrong-pass").status_code == 401
        assert sign_in(base, email).status_code == 201
        for _ in range(2):  # counted from zero again: no lock yet
            assert sign_in(base, email, "wrong-pass").status_code == 401
        assert sign_in(base, email).status_code == 201


def test_source_address_is_locked_after_its_larger_budget(serve: Serve, users: Users) -> None:
    with serve(policy=STRICT) as base:
        # 8 failures over 4 accounts (2 each, under the per-account limit of 3)
        codes = [
            sign_in(base, f"nobody{i % 4}-{users.suffix}@id.test", "wrong-pass").status_code
            for i in range(8)
        ]
        assert codes == [401] * 7 + [429]
        r = sign_in(base, users.email("admin"))  # a fresh account, the same source
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1


def test_unknown_email_verifies_the_dummy_hash(serve: Serve, users: Users) -> None:
    hasher = RecordingHasher()
    verifier = PasswordVerifier(hasher=hasher)
    with serve(verifier=verifier) as base:
        dummy = verifier._dummy
        assert dummy is not None  # made at start-up, before the first login
        r = sign_in(base, f"ghost-{users.suffix}@id.test", "whatever-1")
        assert r.status_code == 401
        assert hasher.verified == [dummy]
        known = sign_in(base, users.email("rep"), "whatever-1")
        assert known.status_code == 401
        assert known.json() == r.json()  # the same answer
        assert len(hasher.verified) == 2 and hasher.verified[1] != dummy
        assert hasher.verified[1].startswith("$argon2id$")


def test_logins_in_flight_do_not_block_other_requests(serve: Serve, users: Users) -> None:
    hasher = RecordingHasher()
    verifier = PasswordVerifier(slots=2, queue=30, hasher=hasher)
    with serve(verifier=verifier, policy=ThrottlePolicy(source_failures=100)) as base:
        r = sign_in(base, users.email("admin"))
        token = r.json()["token"]
        hasher.release.clear()  # every verification now waits in its thread
        with ThreadPoolExecutor(20) as pool:
            logins = [
                pool.submit(sign_in, base, f"u{i}-{users.suffix}@id.test", "wrong-pass")
                for i in range(20)
            ]
            for _ in range(2):  # both slots are taken, 18 more logins wait for them
                assert hasher.entered.acquire(timeout=30)
            me = requests.get(base + "/api/v1/auth/me", headers=_bearer(token), timeout=10)
            assert me.status_code == 200
            assert not any(f.done() for f in logins)
            hasher.release.set()
            codes = sorted(f.result(timeout=120).status_code for f in logins)
        assert codes == [401] * 20


def test_a_flood_beyond_the_queue_answers_429_at_once(serve: Serve, users: Users) -> None:
    hasher = RecordingHasher()
    verifier = PasswordVerifier(slots=1, queue=2, hasher=hasher)
    with serve(verifier=verifier) as base:
        hasher.release.clear()
        with ThreadPoolExecutor(8) as pool:
            held = [
                pool.submit(sign_in, base, f"h{i}-{users.suffix}@id.test", "wrong-pass")
                for i in range(3)
            ]
            assert hasher.entered.acquire(timeout=30)
            # the other two reach the queue
            eventually(lambda: verifier.in_flight == 3, timeout_s=30, interval_s=0.01)
            extra = [sign_in(base, f"x{i}-{users.suffix}@id.test", "wrong-pass") for i in range(3)]
            for r in extra:
                assert r.status_code == 429, r.text
                assert r.headers["Retry-After"] == "1"
            hasher.release.set()
            assert sorted(f.result(timeout=120).status_code for f in held) == [401] * 3


def test_deactivated_user_loses_every_token_and_cannot_sign_in(serve: Serve, users: Users) -> None:
    with serve() as base:
        admin = sign_in(base, users.email("admin")).json()["token"]
        rep = sign_in(base, users.email("rep")).json()["token"]
        assert requests.get(base + "/api/v1/auth/me", headers=_bearer(rep), timeout=10).ok
        forbidden = requests.post(
            f"{base}/api/v1/users/{users.ids['other']}/deactivate",
            headers=_bearer(rep),
            timeout=10,
        )
        assert forbidden.status_code == 403
        r = requests.post(
            f"{base}/api/v1/users/{users.ids['rep']}/deactivate",
            headers=_bearer(admin),
            timeout=10,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"user_id": users.ids["rep"], "active": False, "revoked_tokens": 1}
        assert (
            requests.get(base + "/api/v1/auth/me", headers=_bearer(rep), timeout=10).status_code
            == 401
        )
        assert sign_in(base, users.email("rep")).status_code == 401
        missing = requests.post(
            f"{base}/api/v1/users/999999999/deactivate", headers=_bearer(admin), timeout=10
        )
        assert missing.status_code == 404


def test_admin_sets_a_password(serve: Serve, users: Users) -> None:
    with serve() as base:
        admin = sign_in(base, users.email("admin")).json()["token"]
        url = f"{base}/api/v1/users/{users.ids['other']}/password"
        short = requests.put(url, json={"password": "short"}, headers=_bearer(admin), timeout=10)
        assert short.status_code == 422
        assert short.json()["error"]["field"] == "password"
        ok = requests.put(
            url, json={"password": "a-new-pass-2"}, headers=_bearer(admin), timeout=30
        )
        assert ok.status_code == 200, ok.text
        assert sign_in(base, users.email("other"), PASSWORD).status_code == 401
        assert sign_in(base, users.email("other"), "a-new-pass-2").status_code == 201


def test_lock_rule_doubles_from_the_limit_and_stops_at_the_cap() -> None:
    from identity.throttle import lock_s

    assert [lock_s(n, 5, ThrottlePolicy()) for n in (1, 4, 5, 6, 7, 9, 10, 50)] == [
        0,
        0,
        30,
        60,
        120,
        480,
        900,
        900,
    ]


def test_a_hash_with_older_parameters_is_upgraded_at_login(
    serve: Serve, users: Users, db: psycopg.Connection
) -> None:
    old = PasswordHasher().hash(PASSWORD)  # argon2-cffi's defaults: 64 MiB, 4 lanes
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s", (old, users.ids["rep"]))
    db.commit()
    with serve() as base:
        assert sign_in(base, users.email("rep")).status_code == 201
        row = db.execute(
            "SELECT password_hash FROM users WHERE id = %s", (users.ids["rep"],)
        ).fetchone()
        assert row is not None and row[0] != old
        assert "m=19456,t=2,p=1" in row[0]
        assert sign_in(base, users.email("rep")).status_code == 201
