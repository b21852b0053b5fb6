"""Security headers from kernel.web's on_response_prepare hook: every response gets
nosniff and a Referrer-Policy; HTML pages get a CSP and no framing unless the handler
set its own policy."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kernel.web import DEFAULT_CSP, security_headers


async def page(_: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><p>hi</p>", content_type="text/html")


async def own_policy(_: web.Request) -> web.Response:
    return web.Response(
        text="<!doctype html>",
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "SAMEORIGIN"},
    )


async def data(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _app() -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/page", page)
    app.router.add_get("/own", own_policy)
    app.router.add_get("/data", data)
    return app


def test_html_pages_get_csp_and_frame_protection_and_own_policies_win() -> None:
    async def go() -> None:
        async with TestClient(TestServer(_app())) as client:
            r = await client.get("/page")
            assert r.headers["Content-Security-Policy"] == DEFAULT_CSP
            assert "frame-ancestors 'none'" in DEFAULT_CSP and "script-src 'self';" in DEFAULT_CSP
            assert r.headers["X-Frame-Options"] == "DENY"
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "same-origin"

            own = await client.get("/own")
            assert own.headers["Content-Security-Policy"] == "default-src 'none'"
            assert own.headers["X-Frame-Options"] == "SAMEORIGIN"
            assert own.headers["X-Content-Type-Options"] == "nosniff"

            js = await client.get("/data")
            assert js.headers["X-Content-Type-Options"] == "nosniff"
            assert "Content-Security-Policy" not in js.headers

    asyncio.run(go())
