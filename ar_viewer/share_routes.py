"""Share links of AR scenes: managers create, list and revoke them; a link opens its one scene.

    POST   /api/v1/ar/shares          {territory | device_id, metric?, expires_in_s, note?}
                                      -> 201 {id, url, token, expires_at, ...}
    GET    /api/v1/ar/shares          the caller's (a manager's team's; an admin: all) links
    DELETE /api/v1/ar/shares/{id}     revoke: the link answers 410 from then on
    GET    /ar/s/{token}              the shared scene's page
    GET    /ar/s/{token}/scene.{fmt}  its files (glb, usdz, png, json)

The link's signed token is its only credential (ar_viewer/shares.py) and opens only the
scene its row names: there is no path from it to any other scene. An unknown or forged
token answers 404, a revoked or expired one 410.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from ar_viewer import shares
from ar_viewer.model import HeightMetric
from ar_viewer.service import SCENE_MEDIA_TYPES, CachedScene
from ar_viewer.shares import Share
from ar_viewer.web import AR_SHARE_KEY, Format, asset_scene, page, scene_file, territory_scene
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Reply, Req, Routes
from kernel.principal import Principal
from telemetry.access import may_see_device
from telemetry.contracts import DeviceId

routes = Routes("ar", "3D and AR scenes of territories and equipment")

MAX_EXPIRY_S = 90 * 24 * 3600
ShareId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Token = Annotated[str, msgspec.Meta(pattern=shares.TOKEN_PATTERN)]


class ArShareNew(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    territory: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    device_id: DeviceId | None = None
    metric: Literal["revenue", "pipeline"] = "revenue"
    expires_in_s: Annotated[int, msgspec.Meta(ge=60, le=MAX_EXPIRY_S)] = 7 * 24 * 3600
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ArShareOut(msgspec.Struct, frozen=True):
    id: int
    kind: str
    territory: str | None
    device_id: str | None
    metric: str
    note: str
    created_by: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class ArShareCreated(msgspec.Struct, frozen=True):
    share: ArShareOut
    token: str
    url: str


class ArShareList(msgspec.Struct, frozen=True):
    items: list[ArShareOut]
    next: int | None


class ArShareListQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100
    before_id: ShareId | None = None


class ArSharePath(msgspec.Struct, frozen=True):
    id: ShareId


class ArLinkPath(msgspec.Struct, frozen=True):
    token: Token


class ArLinkFilePath(msgspec.Struct, frozen=True):
    token: Token
    fmt: Format


def _out(s: Share, now: datetime) -> ArShareOut:
    state: Literal["active", "expired", "revoked"] = (
        "revoked" if s.revoked_at else ("expired" if now >= s.expires_at else "active")
    )
    return ArShareOut(
        s.id, s.kind, s.territory, s.device_id, s.metric, s.note, s.created_by,
        s.created_at, s.expires_at, s.revoked_at, state,
    )  # fmt: skip


def _may_manage(principal: Principal, share: Share) -> bool:
    return principal.is_admin or share.created_by in principal.team_user_ids


@routes.post(
    "/api/v1/ar/shares",
    access=Access.managers(
        unscoped="the handler checks that the named territory or device is one the caller may see"
    ),
    summary="Create a share link to one scene, for a customer",
    status=201,
    errors=(404, 422),
)
async def create_share(req: Req, body: ArShareNew) -> ArShareCreated:
    principal = req.user
    if (body.territory is None) == (body.device_id is None):
        raise Unprocessable("name exactly one of territory or device_id", field="territory")
    async with req.connection() as conn:
        territory_id = None
        if body.territory is not None:
            row = await (
                await conn.execute("SELECT id FROM territories WHERE name = %s", (body.territory,))
            ).fetchone()
            if row is None or not (
                principal.sees_everything or row[0] in principal.team_territory_ids
            ):
                raise NotFound(f"no territory named {body.territory!r}", field="territory")
            territory_id = int(row[0])
        elif body.device_id is not None and not await may_see_device(
            conn, principal, body.device_id
        ):
            raise NotFound(f"no device {body.device_id!r}", field="device_id")
        share = await shares.create(
            conn,
            kind="territory" if territory_id is not None else "asset",
            territory_id=territory_id,
            device_id=body.device_id if territory_id is None else None,
            metric=body.metric,
            note=body.note,
            created_by=principal.user_id,
            expires_in_s=body.expires_in_s,
        )
    token = shares.sign(req.app[AR_SHARE_KEY], share)
    origin = f"{req.request.scheme}://{req.request.host}"
    return ArShareCreated(_out(share, share.created_at), token, f"{origin}/ar/s/{token}")


@routes.get(
    "/api/v1/ar/shares",
    access=Access.managers(unscoped="the list holds the links the caller's team created"),
    summary="Share links, newest first",
)
async def list_shares(req: Req, query: ArShareListQuery) -> ArShareList:
    principal = req.user
    creators = None if principal.is_admin else list(principal.team_user_ids)
    async with req.connection() as conn:
        rows = await shares.listed(conn, creators, query.limit, query.before_id)
    now = datetime.now(UTC)
    return ArShareList(
        [_out(s, now) for s in rows], rows[-1].id if len(rows) == query.limit else None
    )


@routes.delete(
    "/api/v1/ar/shares/{id}",
    access=Access.managers(unscoped="the handler allows the links the caller's team created"),
    summary="Revoke a share link (it answers 410 from then on)",
    status=204,
    errors=(404,),
)
async def revoke_share(req: Req, path: ArSharePath) -> Reply[None]:
    async with req.connection() as conn:
        share = await shares.get(conn, path.id)
        if share is None or not _may_manage(req.user, share):
            raise NotFound(f"no share link {path.id}", field="id")
        await shares.revoke(conn, path.id, req.user.user_id)
    return Reply(None, status=204)


_LINK = "the signed token in the path is the credential; it opens only the scene it names"


async def _shared_scene(req: Req, token: str) -> tuple[Share, CachedScene]:
    async with req.connection() as conn:
        share = await shares.open_link(conn, req.app[AR_SHARE_KEY], token)
    if share.kind == "territory" and share.territory is not None:
        metric: HeightMetric = "pipeline" if share.metric == "pipeline" else "revenue"
        return share, await territory_scene(req.app, share.territory, metric)
    if share.device_id is None:  # the territory or device was deleted with its share
        raise NotFound("no such share link", field="token")
    return share, await asset_scene(req.app, share.device_id)


@routes.get(
    "/ar/s/{token}",
    access=Access.public(_LINK),
    summary="A shared scene's page",
    content_type="text/html",
    errors=(404, 410),
)
async def shared_page(req: Req, path: ArLinkPath) -> web.StreamResponse:
    _, entry = await _shared_scene(req, path.token)
    return page(req.request, entry, account_links=False)


@routes.get(
    "/ar/s/{token}/scene.{fmt}",
    access=Access.public(_LINK),
    summary="A file of a shared scene",
    content_type=SCENE_MEDIA_TYPES,
    errors=(404, 410),
)
async def shared_file(req: Req, path: ArLinkFilePath) -> web.StreamResponse:
    _, entry = await _shared_scene(req, path.token)
    return await scene_file(req.request, entry, path.fmt)
