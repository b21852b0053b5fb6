"""Users, roles, passwords, API tokens, session cookies and the request authenticator.

- Passwords are hashed with Argon2id (identity.passwords; off the event loop when serving).
  API tokens are 256-bit random secrets (`fm_<prefix>_<secret>`); only their SHA-256 is
  stored, so a token can be looked up in one indexed query and revoked by setting
  `revoked_at`. A session is the same kind of token with `kind = 'session'` and an expiry,
  carried in an HttpOnly cookie instead of a header.
- `await current_user(request)` resolves `Authorization: Bearer <token>` or, when no such
  header is sent, the session cookie into a `Principal` (cached on the request), or raises
  401. CSRF: a cookie is sent by the browser on its own, so an unsafe request
  (POST/PUT/PATCH/DELETE) authenticated by the cookie must also carry the header
  `X-Requested-With` (any value). A cross-site form cannot set a custom header, and a
  cross-site script cannot without a CORS pre-flight, which this server never grants. The
  cookie is also `SameSite=Lax`. Bearer requests need no such header: browsers never add
  them on their own.
- The Principal and the record-level policy (`access_clause`) are pure and live in
  kernel.principal.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from typing import Any

from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from identity.passwords import hash_password
from kernel.errors import ApiError
from kernel.principal import ROLES, AuthError, Forbidden, Principal
from kernel.web import DB_POOL

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "create_user",
    "current_user",
    "forget_tokens",
    "hash_password",
    "issue_token",
    "load_principal",
    "principal_for_token",
    "revoke_token",
]

SESSION_COOKIE = "fm_session"
CSRF_HEADER = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_TTL_S = 12 * 3600


# --------------------------------------------------------------------------- tokens


def new_token() -> tuple[str, str, bytes]:
    """A fresh token: (token shown once to the user, display prefix, stored hash)."""
    prefix = secrets.token_hex(4)
    token = f"fm_{prefix}_{secrets.token_urlsafe(32)}"
    return token, prefix, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --------------------------------------------------------------------------- principal


_PRINCIPAL_KEY = web.RequestKey("fieldmesh_principal", Principal)

# One round trip: the user (by token or by id) and, for a manager, the whole team below
# them (recursively through users.manager_id) with the team's territories.
_PRINCIPAL_SQL = """
WITH RECURSIVE tok AS (
    SELECT t.id, t.user_id, t.last_used_at FROM api_tokens t
    WHERE t.token_hash = %(hash)s AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())
), who AS (
    SELECT u.id, u.email, u.role, u.territory_id FROM users u
    WHERE u.active AND u.id = coalesce((SELECT user_id FROM tok), %(uid)s)
), team(id, territory_id) AS (
    SELECT id, territory_id FROM who
    UNION
    SELECT u.id, u.territory_id FROM users u JOIN team ON u.manager_id = team.id
    WHERE (SELECT role FROM who) = 'manager' AND u.active
)
SELECT who.id, who.email, who.role, who.territory_id,
       (SELECT id FROM tok) AS token_id,
       (SELECT last_used_at < now() - interval '1 minute' OR last_used_at IS NULL FROM tok) AS stale,
       (SELECT array_agg(DISTINCT id) FROM team) AS ids,
       (SELECT array_remove(array_agg(DISTINCT territory_id), NULL) FROM team) AS territories
FROM who
"""


def _principal(row: dict[str, Any]) -> Principal:
    return Principal(
        user_id=row["id"],
        email=row["email"],
        role=row["role"],
        territory_id=row["territory_id"],
        team_user_ids=tuple(row["ids"] or (row["id"],)),
        team_territory_ids=tuple(row["territories"] or ()),
        token_id=row["token_id"],
    )


async def load_principal(conn: AsyncConnection[Any], user_id: int) -> Principal | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_PRINCIPAL_SQL, {"hash": None, "uid": user_id})
    row = await cur.fetchone()
    return _principal(row) if row else None


async def principal_for_token(conn: AsyncConnection[Any], token: str) -> Principal | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_PRINCIPAL_SQL, {"hash": token_hash(token), "uid": None})
    row = await cur.fetchone()
    if row is None or row["token_id"] is None:
        return None
    if row["stale"]:  # last_used_at is kept to the minute, not written on every request
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (row["token_id"],)
        )
    return _principal(row)


def request_token(request: web.Request) -> str:
    """The caller's token: the bearer header, else the session cookie (CSRF-checked)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization header must be 'Bearer <token>'")
        return token.strip()
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise AuthError("missing Authorization: Bearer <token> header or session cookie")
    if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER, "").strip():
        raise Forbidden(
            f"a request signed in by the session cookie must send the {CSRF_HEADER} header"
        )
    return cookie


async def current_user(request: web.Request) -> Principal:
    """The authenticated principal of this request, or 401."""
    cached: Principal | None = request.get(_PRINCIPAL_KEY)
    if cached is not None:
        return cached
    token = request_token(request)
    digest = token_hash(token)
    now = time.monotonic()
    hit = _CACHE.get(digest)
    if hit is not None and hit[1] > now:
        principal: Principal | None = hit[0]
    else:
        async with request.app[DB_POOL].connection() as conn:
            principal = await principal_for_token(conn, token)
        if principal is not None:
            if len(_CACHE) > 10_000:
                _CACHE.clear()
            _CACHE[digest] = (principal, now + PRINCIPAL_CACHE_S)
    if principal is None:
        raise AuthError("unknown, expired or revoked token")
    request[_PRINCIPAL_KEY] = principal
    return principal


# A resolved token is trusted for this long in each server process: a revocation (or a
# change of role, territory or team) takes effect within PRINCIPAL_CACHE_S everywhere, and
# at once in the process that revoked. It saves a database round trip on every request.
PRINCIPAL_CACHE_S = 2.0
_CACHE: dict[bytes, tuple[Principal, float]] = {}


def forget_tokens() -> None:
    """Drop every cached principal in this process (after a revocation or user change)."""
    _CACHE.clear()


async def create_user(
    conn: AsyncConnection[Any],
    *,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
    manager_id: int | None = None,
    territory_id: int | None = None,
    skills: list[str] | None = None,
) -> int:
    if role not in ROLES:
        raise ApiError(f"role must be one of {', '.join(ROLES)}", field="role", status=422)
    # Argon2 off the event loop (tens of milliseconds of CPU)
    hashed = await asyncio.to_thread(hash_password, password) if password else None
    cur = await conn.execute(
        """
        INSERT INTO users (email, name, role, password_hash, manager_id, territory_id, skills)
        VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
        """,
        (
            email,
            name,
            role,
            hashed,
            manager_id,
            territory_id,
            skills or [],
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def issue_token(
    conn: AsyncConnection[Any],
    user_id: int,
    name: str = "",
    *,
    kind: str = "api",
    ttl_s: float | None = None,
) -> tuple[int, str]:
    """Create an API token (or a session: kind='session') for the user; returns
    (token id, token). The token is shown once."""
    token, prefix, digest = new_token()
    cur = await conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix, kind, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING id",
        (user_id, name, digest, prefix, kind, ttl_s),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), token


async def revoke_token(conn: AsyncConnection[Any], token_id: int, principal: Principal) -> bool:
    forget_tokens()
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
        "AND (user_id = %s OR %s)",
        (token_id, principal.user_id, principal.is_admin),
    )
    return cur.rowcount == 1
