"""HTTP adapters shared by the signed-in routes and the share links: load a scene (cached by
the content hash of its data), answer its page or one of its files.

Every request reads the current data; the scene and its files are cached by the content
hash of that data, which is also the ETag (If-None-Match gives 304). Scene building and
exports run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Literal, Protocol

from aiohttp import web

from ar_viewer import data
from ar_viewer.asset import build_asset_scene
from ar_viewer.errors import DataUnavailable, ExportError, NotFoundError, SceneInputError
from ar_viewer.model import AssetInput, HeightMetric, Scene, TerritoryInput
from ar_viewer.page import PageLinks, content_security_policy, render_page
from ar_viewer.scene import build_territory_scene
from ar_viewer.service import FORMATS, CachedScene, SceneCache, content_hash
from kernel.errors import ApiError, NotFound, Unavailable, Unprocessable
from kernel.pages import page_headers
from kernel.web import DB_POOL

Format = Literal["glb", "usdz", "png", "json"]


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
AR_SHARE_KEY = web.AppKey("ar_share_key", bytes)


def source(app: web.Application) -> SceneSource:
    src = app.get(AR_SOURCE)
    return src if src is not None else DbSource(app)


async def load(
    app: web.Application, fetch: Callable[[], Awaitable[TerritoryInput | AssetInput]]
) -> CachedScene:
    try:
        inp = await fetch()
    except NotFoundError as exc:
        raise NotFound(str(exc)) from exc
    except DataUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    key = content_hash(inp)
    cache = app[AR_CACHE]

    def build() -> Scene:
        if isinstance(inp, TerritoryInput):
            return build_territory_scene(inp)
        return build_asset_scene(inp)

    try:
        return await asyncio.get_running_loop().run_in_executor(None, cache.get, key, build)
    except SceneInputError as exc:
        raise Unprocessable(str(exc), field=exc.field) from exc


async def territory_scene(app: web.Application, name: str, metric: HeightMetric) -> CachedScene:
    return await load(app, lambda: source(app).territory(name, metric))


async def asset_scene(app: web.Application, device_id: str) -> CachedScene:
    return await load(app, lambda: source(app).asset(device_id))


def _not_modified(request: web.Request, etag: str) -> bool:
    inm = request.headers.get("If-None-Match", "")
    return any(
        t.strip().strip('"').removeprefix("W/").strip('"') == etag
        for t in inm.split(",")
        if t.strip()
    )


def page(
    request: web.Request,
    entry: CachedScene,
    *,
    metric: str | None = None,
    account_links: bool = True,
) -> web.StreamResponse:
    """The scene's HTML page; its files are linked next to the page's own path."""
    # the page embeds its own URL (QR code): the ETag covers the data and the URL
    url_hash = hashlib.sha256(str(request.url).encode()).hexdigest()[:8]
    etag = f"page-{entry.key}-{url_hash}"
    # a share link's URL is its credential: never sent on as a Referer
    headers = page_headers(
        content_security_policy(), allow_features=("xr-spatial-tracking",), referrer="no-referrer"
    )
    headers.update({"ETag": f'"{etag}"', "Cache-Control": "private, no-cache"})
    if _not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    base = request.rel_url.raw_path.rstrip("/")  # still percent-encoded, safe in attributes
    q = f"?v={entry.key}" + (f"&metric={metric}" if metric is not None else "")
    links = PageLinks(
        f"{base}/scene.glb{q}",
        f"{base}/scene.usdz{q}",
        f"{base}/scene.png{q}",
        str(request.url),
        **({} if account_links else {"account_url_template": ""}),
    )
    return web.Response(
        text=render_page(entry.scene, links), content_type="text/html", headers=headers
    )


async def scene_file(request: web.Request, entry: CachedScene, fmt: Format) -> web.Response:
    etag = f"{fmt}-{entry.key}"
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
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
        return web.json_response(body, headers=headers)
    if _not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    try:
        blob = await asyncio.get_running_loop().run_in_executor(None, entry.artefact, fmt)
    except ExportError as exc:
        raise ApiError(str(exc), code="export_failed", status=500) from exc
    if fmt == "usdz":
        headers["Content-Disposition"] = 'inline; filename="scene.usdz"'
    return web.Response(body=blob, content_type=FORMATS[fmt], headers=headers)
