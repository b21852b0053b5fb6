"""A password login: throttled, constant-work for unknown users, hashing off the loop.

Steps, each the same whatever the e-mail: (1) refuse at once with 429 when the account
or the source is locked (identity.throttle); (2) look the user up; (3) verify the password
in the verifier's threads, against the user's hash or the dummy hash; (4) on success
clear the account's failures and issue a token or session, on failure count it for the
account and the source and answer 401 (or 429 when this failure started a lock). No
database connection is held while hashing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from identity import throttle
from identity.auth import SESSION_TTL_S, issue_token
from identity.passwords import PasswordVerifier
from identity.throttle import ThrottlePolicy, TooManyAttempts
from kernel.principal import AuthError

WRONG = "wrong e-mail or password"


@dataclass(frozen=True, slots=True)
class Issued:
    token_id: int
    token: str
    user_id: int
    expires_in_s: float | None


async def login(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    verifier: PasswordVerifier,
    policy: ThrottlePolicy,
    *,
    email: str,
    password: str,
    source: str | None,
    session: bool,
) -> Issued:
    account = throttle.account_key(email)
    src = throttle.source_key(source)
    async with pool.connection() as conn:  # the locks and the user in one round trip
        cur = await conn.execute(
            f"SELECT {throttle.LOCKED_S_SQL}, u.id, u.password_hash FROM (SELECT 1) AS one "
            "LEFT JOIN users u ON lower(u.email) = lower(%(email)s) AND u.active",
            {"keys": [account, src], "email": email},
        )
        found = await cur.fetchone()
    assert found is not None
    throttle.raise_if_locked(found[0])
    row = None if found[1] is None else (found[1], found[2])
    ok = await verifier.verify(row[1] if row else None, password)
    if not ok or row is None:
        async with pool.connection() as conn:  # committed before the error is raised
            locked_s = await throttle.record_failure(
                conn,
                [(account, policy.account_failures), (src, policy.source_failures)],
                policy,
            )
        if locked_s > 0:
            raise TooManyAttempts(f"{WRONG}; too many failed logins, try again later", locked_s)
        raise AuthError(WRONG)
    assert row is not None
    user_id = int(row[0])
    ttl = SESSION_TTL_S if session else None
    stored = row[1]
    upgraded = await verifier.rehash(password) if verifier.needs_rehash(stored) else None
    async with pool.connection() as conn:
        await throttle.record_success(conn, account)
        if upgraded is not None:  # hashed with older parameters: stored anew
            await conn.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s",
                (upgraded, user_id, stored),
            )
        token_id, token = await issue_token(
            conn,
            user_id,
            "session" if session else "login",
            kind="session" if session else "api",
            ttl_s=ttl,
        )
    return Issued(token_id, token, user_id, ttl)
