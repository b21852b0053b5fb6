"""HTTP routes of the AR viewer, for signed-in users.

    GET /ar/territories                        the territories the caller may see (JSON)
    GET /ar/territories/{name}                 the page (?metric=revenue|pipeline)
    GET /ar/territories/{name}/scene.{fmt}     glb, usdz, png, or json (labels, legend, issues)
    GET /ar/assets/{device_id}                 the page of one piece of equipment
    GET /ar/assets/{device_id}/scene.{fmt}
    GET /ar/static/{file}                      the model-viewer component, from node_modules

A territory's scene shows its accounts' names, revenue and health: a caller sees the scenes
of their own territory (a manager: their team's territories; admins and viewers: all); an
asset's scene is visible as its device is (`telemetry.access.device_scope`). Anything else
answers 404. Customers get one scene through a share link (`ar_viewer/share_routes.py`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from ar_viewer import data, share_routes
from ar_viewer.errors import DataUnavailable
from ar_viewer.service import SCENE_MEDIA_TYPES, SceneCache
from ar_viewer.shares import share_key
from ar_viewer.web import (
    AR_CACHE,
    AR_SHARE_KEY,
    Format,
    asset_scene,
    page,
    scene_file,
    territory_scene,
)
from kernel.errors import NotFound, Unavailable
from kernel.http import Access, Req, Routes
from kernel.principal import Principal
from kernel.settings import PROJECT_ROOT
from kernel.web import SETTINGS
from telemetry.access import device_scope
from telemetry.contracts import DeviceId

MODEL_VIEWER_DIST = PROJECT_ROOT / "node_modules" / "@google" / "model-viewer" / "dist"

routes = Routes("ar", "3D and AR scenes of territories and equipment")

TerritoryName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ArTerritoryPath(msgspec.Struct, frozen=True):
    name: TerritoryName


class ArTerritoryFilePath(msgspec.Struct, frozen=True):
    name: TerritoryName
    fmt: Format


class ArAssetPath(msgspec.Struct, frozen=True):
    device_id: DeviceId


class ArAssetFilePath(msgspec.Struct, frozen=True):
    device_id: DeviceId
    fmt: Format


class ArMetricQuery(msgspec.Struct, frozen=True):
    metric: Literal["revenue", "pipeline"] = "revenue"


class ArTerritories(msgspec.Struct, frozen=True):
    territories: list[str]


def _sees_territory(principal: Principal, territory_id: int) -> bool:
    return principal.sees_everything or territory_id in principal.team_territory_ids


async def territory_scope(req: Req, path: Any) -> None:
    """404 unless the territory exists and is the caller's (or their team's)."""
    async with req.connection() as conn:
        row = await (
            await conn.execute("SELECT id FROM territories WHERE name = %s", (path.name,))
        ).fetchone()
    if row is None or not _sees_territory(req.user, int(row[0])):
        raise NotFound(f"no territory named {path.name!r}", field="name")


_SCENE_FILES = "A scene file: GLB (model/gltf-binary), USDZ (model/vnd.usdz+zip), PNG, or JSON."


@routes.get(
    "/ar/territories",
    access=Access.read(unscoped="the list holds only the territories the caller may see"),
    summary="Names of the territories whose scenes the caller may open",
)
async def territories(req: Req) -> ArTerritories:
    async with req.connection() as conn:
        try:
            rows = await data.list_territories_with_ids(conn)
        except DataUnavailable as exc:
            raise Unavailable(str(exc)) from exc
    return ArTerritories([name for tid, name in rows if _sees_territory(req.user, tid)])


@routes.get(
    "/ar/territories/{name}",
    access=Access.read(scope=territory_scope),
    summary="The AR page of a territory",
    content_type="text/html",
)
async def territory_page(
    req: Req, path: ArTerritoryPath, query: ArMetricQuery
) -> web.StreamResponse:
    entry = await territory_scene(req.app, path.name, query.metric)
    return page(req.request, entry, metric=query.metric)


@routes.get(
    "/ar/territories/{name}/scene.{fmt}",
    access=Access.read(scope=territory_scope),
    summary="A file of a territory's scene",
    description=_SCENE_FILES,
    content_type=SCENE_MEDIA_TYPES,
)
async def territory_file(
    req: Req, path: ArTerritoryFilePath, query: ArMetricQuery
) -> web.StreamResponse:
    entry = await territory_scene(req.app, path.name, query.metric)
    return await scene_file(req.request, entry, path.fmt)


@routes.get(
    "/ar/assets/{device_id}",
    access=Access.read(scope=device_scope),
    summary="The AR page of one piece of equipment",
    content_type="text/html",
)
async def asset_page(req: Req, path: ArAssetPath) -> web.StreamResponse:
    return page(req.request, await asset_scene(req.app, path.device_id))


@routes.get(
    "/ar/assets/{device_id}/scene.{fmt}",
    access=Access.read(scope=device_scope),
    summary="A file of an asset's scene",
    description=_SCENE_FILES,
    content_type=SCENE_MEDIA_TYPES,
)
async def asset_file(req: Req, path: ArAssetFilePath) -> web.StreamResponse:
    entry = await asset_scene(req.app, path.device_id)
    return await scene_file(req.request, entry, path.fmt)


class ArStaticPath(msgspec.Struct, frozen=True):
    file: Annotated[str, msgspec.Meta(pattern=r"^model-viewer[A-Za-z0-9._-]*$", max_length=100)]


@routes.get(
    "/ar/static/{file}",
    access=Access.public("the model-viewer component, a published npm package: no data"),
    summary="The model-viewer component",
    content_type="text/javascript",
)
async def static_file(path: ArStaticPath) -> web.StreamResponse:
    file = MODEL_VIEWER_DIST / path.file
    if not file.is_file():
        raise NotFound(f"no static file {path.file!r}", field="file")
    ctype = "application/json" if path.file.endswith(".map") else "text/javascript"
    return web.Response(
        body=await asyncio.to_thread(file.read_bytes),
        content_type=ctype,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def setup(app: web.Application) -> None:
    app[AR_CACHE] = SceneCache()
    app[AR_SHARE_KEY] = share_key(app[SETTINGS])
    routes.mount(app)
    share_routes.routes.mount(app)
