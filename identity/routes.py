"""Identity over HTTP: login (bearer token or session cookie), logout, the caller, their
tokens, and the user administration that is more than editing a row (deactivation,
password reset). Users' plain fields (role, territory, manager ...) are edited through
/api/v1/users like any record, by admins only.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from psycopg.rows import dict_row

from identity import auth
from identity.login import login
from identity.passwords import MAX_PASSWORD_LENGTH, PasswordVerifier
from identity.throttle import ThrottlePolicy
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes, encode_json
from kernel.web import DB_POOL

routes = Routes("auth", "Login, sessions, tokens and user administration")

VERIFIER = web.AppKey("password_verifier", PasswordVerifier)
THROTTLE = web.AppKey("login_throttle_policy", ThrottlePolicy)

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Password = Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LENGTH)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
OWN = "acts on the caller's own account only"


class LoginIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    session: Annotated[
        bool,
        msgspec.Meta(
            description="true: set an HttpOnly session cookie instead of returning a token"
        ),
    ] = False


class LoginOut(msgspec.Struct, frozen=True):
    token_id: int
    token: Annotated[str | None, msgspec.Meta(description="null for a cookie session")]
    expires_in_s: float | None = None


class Me(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    role: str
    territory_id: int | None
    team_user_ids: list[int]
    team_territory_ids: list[int]
    token_id: int | None
    timezone: Annotated[
        str | None,
        msgspec.Meta(
            description="The caller's IANA time zone (users.timezone); the console shows "
            "times in it. null when the account has none (then the browser's zone is used)."
        ),
    ] = None
    name: str | None = None


class MeChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timezone: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            description="An IANA time zone name, like Europe/Paris (422 for another name)",
        ),
    ]


@functools.cache
def known_zones() -> frozenset[str]:
    """The IANA zone names this machine's time zone database holds (and UTC)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


class TokenInfo(msgspec.Struct, frozen=True):
    id: int
    name: str
    prefix: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(msgspec.Struct, frozen=True):
    items: list[TokenInfo]


class TokenIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    expires_in_s: Annotated[int, msgspec.Meta(ge=60, le=10 * 365 * 86400)] | None = None


class TokenPath(msgspec.Struct, frozen=True):
    token_id: Id


class UserPath(msgspec.Struct, frozen=True):
    user_id: Id


class PasswordIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: Password


class UserState(msgspec.Struct, frozen=True):
    user_id: int
    active: bool
    revoked_tokens: int


# --------------------------------------------------------------------------- login


def _cookie_secure(req: Req) -> bool:
    return req.request.secure or req.settings.secure_cookies


@routes.post(
    "/api/v1/auth/token",
    access=Access.public("this is how a caller signs in"),
    summary="Sign in with e-mail and password: a bearer token, or a session cookie",
    response=LoginOut,
    status=201,
    errors=(401, 429),
)
async def sign_in(req: Req, body: LoginIn) -> web.Response:
    """Throttled per account and per source address (429 with Retry-After). With
    `"session": true` the answer sets the HttpOnly cookie `fm_session` (SameSite=Lax;
    Secure over TLS) and carries no token; unsafe requests signed in by the cookie must
    send the `X-Requested-With` header."""
    issued = await login(
        req.pool,
        req.app[VERIFIER],
        req.app[THROTTLE],
        email=body.email,
        password=body.password,
        source=req.request.remote,
        session=body.session,
    )
    out = LoginOut(issued.token_id, None if body.session else issued.token, issued.expires_in_s)
    resp = web.Response(body=encode_json(out), status=201, content_type="application/json")
    if body.session:
        resp.set_cookie(
            auth.SESSION_COOKIE,
            issued.token,
            max_age=int(auth.SESSION_TTL_S),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=_cookie_secure(req),
        )
    resp.headers["Cache-Control"] = "no-store"
    return resp


@routes.post(
    "/api/v1/auth/logout",
    access=Access.read(unscoped=OWN),
    summary="Sign out: revoke the token or session this request was made with",
    status=204,
)
async def sign_out(req: Req) -> web.Response:
    token_id = req.user.token_id
    if token_id is not None:
        async with req.connection() as conn:
            await auth.revoke_token(conn, token_id, req.user)
        auth.forget_tokens()  # again after the commit, in case a request re-cached it
    resp = web.Response(status=204)
    resp.del_cookie(auth.SESSION_COOKIE, path="/")
    return resp


@routes.get("/api/v1/auth/me", access=Access.read(unscoped=OWN), summary="The caller")
async def me(req: Req) -> Me:
    return await _me(req)


async def _me(req: Req) -> Me:
    p = req.user
    async with req.connection() as conn:
        cur = await conn.execute("SELECT timezone, name FROM users WHERE id = %s", (p.user_id,))
        row = await cur.fetchone()
    return Me(
        p.user_id,
        p.email,
        p.role,
        p.territory_id,
        list(p.team_user_ids),
        list(p.team_territory_ids),
        p.token_id,
        (row[0] or None) if row is not None else None,
        row[1] if row is not None else None,
    )


@routes.patch(
    "/api/v1/auth/me",
    access=Access.read(unscoped=OWN),
    summary="Change the caller's own settings: their time zone",
    description="Every role may set their own time zone (the console shows times in it); "
    "a name not in the IANA time zone database answers 422 on `timezone`.",
    response=Me,
    errors=(422,),
)
async def change_me(req: Req, body: MeChange) -> Me:
    if body.timezone not in known_zones():
        raise Unprocessable(
            f"timezone: {body.timezone[:64]!r} is not a known time zone "
            "(an IANA name like Europe/Paris)",
            field="timezone",
        )
    async with req.connection() as conn:
        await conn.execute(
            "UPDATE users SET timezone = %s, updated_at = now() WHERE id = %s",
            (body.timezone, req.user.user_id),
        )
    return await _me(req)


# --------------------------------------------------------------------------- tokens


@routes.get(
    "/api/v1/auth/tokens",
    access=Access.read(unscoped=OWN),
    summary="The caller's tokens and sessions (never the secrets)",
)
async def list_tokens(req: Req) -> TokenList:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, name, prefix, kind, created_at, expires_at, last_used_at, revoked_at "
            "FROM api_tokens WHERE user_id = %s ORDER BY id",
            (req.user.user_id,),
        )
        rows = await cur.fetchall()
    return TokenList([TokenInfo(**r) for r in rows])


@routes.post(
    "/api/v1/auth/tokens",
    access=Access.read(unscoped=OWN),
    summary="Issue an API token for the caller (shown once)",
    status=201,
)
async def create_token(req: Req, body: TokenIn) -> LoginOut:
    async with req.connection() as conn:
        token_id, token = await auth.issue_token(
            conn, req.user.user_id, body.name, ttl_s=body.expires_in_s
        )
    return LoginOut(token_id, token, body.expires_in_s)


@routes.delete(
    "/api/v1/auth/tokens/{token_id}",
    access=Access.read(unscoped="a caller revokes their own tokens; an admin, anyone's"),
    summary="Revoke a token or session",
    status=204,
)
async def revoke_token(req: Req, path: TokenPath) -> None:
    async with req.connection() as conn:
        revoked = await auth.revoke_token(conn, path.token_id, req.user)
    auth.forget_tokens()  # again after the commit, in case a request re-cached it meanwhile
    if not revoked:
        raise NotFound(f"token {path.token_id} not found")


# --------------------------------------------------------------------------- user admin


async def _user_exists(conn: Any, user_id: int) -> None:
    cur = await conn.execute("SELECT 1 FROM users WHERE id = %s", (user_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"user {user_id} not found", field="user_id")


@routes.post(
    "/api/v1/users/{user_id}/deactivate",
    access=Access.admin(),
    summary="Deactivate a user and revoke every token and session they hold",
)
async def deactivate_user(req: Req, path: UserPath) -> UserState:
    """The user can no longer sign in, and every token they held stops working at once in
    this process and within PRINCIPAL_CACHE_S in the others. Reactivating them (PATCH
    /api/v1/users/{id} with active=true) does not bring the old tokens back."""
    async with req.connection() as conn:
        await _user_exists(conn, path.user_id)
        await conn.execute(
            "UPDATE users SET active = false, updated_at = now() WHERE id = %s", (path.user_id,)
        )
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
            (path.user_id,),
        )
        revoked = cur.rowcount
    auth.forget_tokens()
    return UserState(path.user_id, False, revoked)


@routes.put(
    "/api/v1/users/{user_id}/password",
    access=Access.admin(),
    summary="Set a user's password and revoke their sessions",
)
async def set_password(req: Req, path: UserPath, body: PasswordIn) -> UserState:
    digest = await req.app[VERIFIER].hash(body.password)
    async with req.connection() as conn:
        await _user_exists(conn, path.user_id)
        await conn.execute(
            "UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s",
            (digest, path.user_id),
        )
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() "
            "WHERE user_id = %s AND kind = 'session' AND revoked_at IS NULL",
            (path.user_id,),
        )
        revoked = cur.rowcount
        active = await (
            await conn.execute("SELECT active FROM users WHERE id = %s", (path.user_id,))
        ).fetchone()
    auth.forget_tokens()
    return UserState(path.user_id, bool(active and active[0]), revoked)


# --------------------------------------------------------------------------- mounting


async def _identity_ctx(app: web.Application) -> AsyncIterator[None]:
    from identity.throttle import prune

    if VERIFIER not in app:
        app[VERIFIER] = PasswordVerifier()
    if THROTTLE not in app:
        app[THROTTLE] = ThrottlePolicy()
    await app[VERIFIER].dummy_hash()  # made now, so the first unknown e-mail costs no more
    async with app[DB_POOL].connection() as conn:
        await prune(conn, app[THROTTLE])
    yield
    app[VERIFIER].close()


def setup(app: web.Application) -> None:
    routes.mount(app)
    app.cleanup_ctx.append(_identity_ctx)
