"""HTTP routes of the AR viewer.

    GET /ar/territories                        names of the territories (JSON)
    GET /ar/territories/{name}                 the page (?metric=revenue|pipeline)
    GET /ar/territories/{name}/scene.{fmt}     glb, usdz, png, or json (labels, legend, issues)
    GET /ar/assets/{device_id}                 the page of one piece of equipment
    GET /ar/assets/{device_id}/scene.{fmt}
    GET /ar/static/{file}                      the model-viewer component, from node_modules

Every request reads the current data; the scene and its files are cached by the content
hash of that data, which is also the ETag (If-None-Match gives 304). Scene building and
exports run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Protocol

from aiohttp import web

from ar_viewer import data
from ar_viewer.asset import build_asset_scene
from ar_viewer.errors import DataUnavailable, ExportError, NotFoundError, SceneInputError
from ar_viewer.model import AssetInput, HeightMetric, Scene, TerritoryInput
from ar_viewer.page import PageLinks, render_page
from ar_viewer.scene import build_territory_scene
from ar_viewer.service import FORMATS, CachedScene, SceneCache, content_hash
from kernel.errors import ApiError, NotFound, Unavailable, Unprocessable
from kernel.settings import PROJECT_ROOT
from kernel.web import DB_POOL

MODEL_VIEWER_DIST = PROJECT_ROOT / "node_modules" / "@google" / "model-viewer" / "dist"


class SceneSource(Protocol):
    """Where scene inputs come from (the database in the app; a fake in unit tests)."""

    async def territory(self, name: str, metric: HeightMetric) -> TerritoryInput: ...

    async def asset(self, device_id: str) -> AssetInput: ...


class DbSource:
    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def territory(self, name: str, metric: HeightMetric) -> TerritoryInput:
        async with self._app[DB_POOL].connection() as conn:
            return await data.load_territory(conn, name, metric)

    async def asset(self, device_id: str) -> AssetInput:
        async with self._app[DB_POOL].connection() as conn:
            return await data.load_asset(conn, device_id)


AR_SOURCE = web.AppKey("ar_source", SceneSource)
AR_CACHE = web.AppKey("ar_cache", SceneCache)


def _source(app: web.Application) -> SceneSource:
    src = app.get(AR_SOURCE)
    return src if src is not None else DbSource(app)


async def _load(
    request: web.Request, fetch: Callable[[], Awaitable[TerritoryInput | AssetInput]]
) -> CachedScene:
    try:
        inp = await fetch()
    except NotFoundError as exc:
        raise NotFound(str(exc)) from exc
    except DataUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    key = content_hash(inp)
    cache = request.app[AR_CACHE]

    def build() -> Scene:
        if isinstance(inp, TerritoryInput):
            return build_territory_scene(inp)
        return build_asset_scene(inp)

    try:
        return await asyncio.get_running_loop().run_in_executor(None, cache.get, key, build)
    except SceneInputError as exc:
        raise Unprocessable(str(exc), field=exc.field) from exc


def _metric(request: web.Request) -> HeightMetric:
    m = request.query.get("metric", "revenue")
    if m == "revenue":
        return "revenue"
    if m == "pipeline":
        return "pipeline"
    raise Unprocessable(f"metric must be revenue or pipeline, not {m!r}", field="metric")


async def _territory_entry(request: web.Request) -> CachedScene:
    name = request.match_info["name"]
    metric = _metric(request)
    return await _load(request, lambda: _source(request.app).territory(name, metric))


async def _asset_entry(request: web.Request) -> CachedScene:
    device_id = request.match_info["device_id"]
    return await _load(request, lambda: _source(request.app).asset(device_id))


def _not_modified(request: web.Request, etag: str) -> bool:
    inm = request.headers.get("If-None-Match", "")
    return any(
        t.strip().strip('"').removeprefix("W/").strip('"') == etag
        for t in inm.split(",")
        if t.strip()
    )


async def _page(request: web.Request, entry: CachedScene) -> web.StreamResponse:
    # the page embeds its own URL (QR code): the ETag covers the data and the URL
    url_hash = hashlib.sha256(str(request.url).encode()).hexdigest()[:8]
    etag = f"page-{entry.key}-{url_hash}"
    if _not_modified(request, etag):
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    base = request.rel_url.raw_path.rstrip("/")  # still percent-encoded, safe in attributes
    q = f"?v={entry.key}" + (
        f"&metric={request.query['metric']}" if "metric" in request.query else ""
    )
    links = PageLinks(
        f"{base}/scene.glb{q}", f"{base}/scene.usdz{q}", f"{base}/scene.png{q}", str(request.url)
    )
    html = render_page(entry.scene, links)
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"ETag": f'"{etag}"', "Cache-Control": "no-cache"},
    )


async def _file(request: web.Request, entry: CachedScene) -> web.StreamResponse:
    fmt = request.match_info["fmt"]
    etag = f"{fmt}-{entry.key}"
    if fmt == "json":
        s = entry.scene
        body = {
            "key": entry.key,
            "title": s.title,
            "kind": s.kind,
            "scale_note": s.scale_note,
            "triangles": s.triangle_count,
            "labels": [asdict(lbl) for lbl in s.labels],
            "legend": [asdict(e) for e in s.legend],
            "issues": [asdict(i) for i in s.issues],
            "stats": s.stats,
        }
        return web.json_response(body, headers={"ETag": f'"{etag}"'})
    if fmt not in FORMATS:
        raise NotFound(
            f"unknown scene format {fmt!r}; known: {', '.join([*FORMATS, 'json'])}", field="fmt"
        )
    headers = {"ETag": f'"{etag}"', "Cache-Control": "no-cache"}
    if _not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    try:
        blob = await asyncio.get_running_loop().run_in_executor(None, entry.artefact, fmt)
    except ExportError as exc:
        raise ApiError(str(exc), code="export_failed", status=500) from exc
    if fmt == "usdz":
        headers["Content-Disposition"] = 'inline; filename="scene.usdz"'
    return web.Response(body=blob, content_type=FORMATS[fmt], headers=headers)


async def territory_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await _territory_entry(request))


async def territory_file(request: web.Request) -> web.StreamResponse:
    return await _file(request, await _territory_entry(request))


async def asset_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await _asset_entry(request))


async def asset_file(request: web.Request) -> web.StreamResponse:
    return await _file(request, await _asset_entry(request))


async def territories(request: web.Request) -> web.Response:
    async with request.app[DB_POOL].connection() as conn:
        try:
            names = await data.list_territories(conn)
        except DataUnavailable as exc:
            raise Unavailable(str(exc)) from exc
    return web.json_response({"territories": names})


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    path = MODEL_VIEWER_DIST / name
    if "/" in name or not name.startswith("model-viewer") or not path.is_file():
        raise NotFound(f"no static file {name!r}")
    ctype = "application/json" if name.endswith(".map") else "text/javascript"
    return web.Response(
        body=await asyncio.to_thread(path.read_bytes),
        content_type=ctype,
        headers={"Cache-Control": "public, max-age=86400"},
    )


def setup(app: web.Application) -> None:
    app[AR_CACHE] = SceneCache()
    app.router.add_get("/ar/static/{file}", static_file)
    app.router.add_get("/ar/territories", territories)
    app.router.add_get("/ar/territories/{name}", territory_page)
    app.router.add_get("/ar/territories/{name}/scene.{fmt}", territory_file)
    app.router.add_get("/ar/assets/{device_id}", asset_page)
    app.router.add_get("/ar/assets/{device_id}/scene.{fmt}", asset_file)
