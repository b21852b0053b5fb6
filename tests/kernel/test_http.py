"""The endpoint registry: typed decoding, deny-by-default access, generated OpenAPI.

Unit tests on an app with no database: the authenticator is a fake keyed by the token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kernel import openapi
from kernel.errors import ApiError, NotFound
from kernel.http import AUTHENTICATE, Access, Reply, Req, Routes, undeclared_routes
from kernel.jsonlimits import json_depth, text_problem
from kernel.principal import AuthError, Principal
from kernel.web import error_middleware

USERS = {
    "admin": Principal(1, "a@x.test", "admin", None, (1,), ()),
    "viewer": Principal(2, "v@x.test", "viewer", None, (2,), ()),
    "rep": Principal(3, "r@x.test", "rep", 7, (3,), (7,)),
}


async def fake_auth(request: web.Request) -> Principal:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in USERS:
        raise AuthError("unknown token")
    return USERS[token]


class ThingPath(msgspec.Struct):
    thing_id: Annotated[int, msgspec.Meta(ge=1)]


class ThingQuery(msgspec.Struct):
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    since: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None
    full: bool = False
    tags: list[str] = []


class NewThing(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    extra: dict[str, Any] = {}


class Thing(msgspec.Struct):
    id: int
    name: str


async def only_even(req: Req, path: Any) -> None:
    if path.thing_id % 2 and not req.user.sees_everything:
        raise NotFound("no such thing")


routes = Routes("things")


@routes.get("/things/{thing_id}", access=Access.read(scope=only_even), summary="one")
async def get_thing(path: ThingPath, query: ThingQuery) -> Thing:
    return Thing(path.thing_id, f"{query.limit}-{query.full}-{','.join(query.tags)}")


@routes.post("/things", access=Access.write(unscoped="test"), summary="create", status=201)
async def create_thing(req: Req, body: NewThing) -> Reply[Thing]:
    return Reply(Thing(1, body.name), headers={"ETag": '"1"'})


@routes.get("/open", access=Access.public("test"), summary="public")
async def open_() -> Thing:
    return Thing(0, "open")


class LinkPath(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(pattern=r"^\d+\.[a-z]+$")]


@routes.get(
    "/links/{token}",
    access=Access.public("test: a page's link"),
    summary="a page",
    content_type="text/html",
    errors=(404, 410),
)
async def link_page(path: LinkPath) -> web.StreamResponse:
    if path.token == "1.old":
        raise ApiError("this link has expired", code="gone", status=410)
    return web.Response(text="<p>page</p>", content_type="text/html")


def _app() -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[AUTHENTICATE] = fake_auth
    routes.mount(app)
    openapi.mount(app)
    return app


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _client() -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(_app()))
    await client.start_server()
    return client


def test_typed_decoding_and_errors() -> None:
    async def go() -> None:
        c = await _client()
        h = {"Authorization": "Bearer admin"}
        try:
            r = await c.get("/things/4?limit=5&full=true&tags=a,b", headers=h)
            assert r.status == 200 and (await r.json())["name"] == "5-True-a,b"
            r = await c.get("/things/4?limit=zero", headers=h)
            body = await r.json()
            assert r.status == 422 and body["error"]["field"] == "limit"
            r = await c.get("/things/4?limit=500", headers=h)
            assert r.status == 422
            # a bare number is no time (msgspec alone would read it as a Unix timestamp)
            r = await c.get("/things/4?since=3.06e-55", headers=h)
            assert r.status == 422 and (await r.json())["error"]["field"] == "since"
            r = await c.get("/things/4?since=2026-12-06T10:00:00Z", headers=h)
            assert r.status == 200
            r = await c.get("/things/%D9%A1", headers=h)  # a non-ASCII digit is no id
            assert r.status == 404
            r = await c.get("/things/4?tags=%00", headers=h)
            assert r.status == 400 and "U+0000" in (await r.json())["error"]["message"]
            r = await c.get("/things/4?limit=1&limit=2", headers=h)
            assert r.status == 400
            r = await c.post("/things", json={"name": "x"}, headers=h)
            assert r.status == 201 and r.headers["ETag"] == '"1"'
            r = await c.post("/things", json={"name": 5}, headers=h)
            assert r.status == 422 and (await r.json())["error"]["field"] == "name"
            r = await c.post("/things", json={"name": "x", "bogus": 1}, headers=h)
            assert r.status == 422
            r = await c.post(
                "/things", data=b"{", headers={**h, "Content-Type": "application/json"}
            )
            assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
            deep = b'{"name":"x","extra":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}"
            r = await c.post(
                "/things", data=deep, headers={**h, "Content-Type": "application/json"}
            )
            assert r.status == 400 and (await r.json())["error"]["code"] == "too_deep"
            r = await c.post(
                "/things",
                data=b'{"name":"a\\u0000b"}',
                headers={**h, "Content-Type": "application/json"},
            )
            assert r.status == 400
            r = await c.post(
                "/things",
                data=b'{"name":"\\ud800"}',
                headers={**h, "Content-Type": "application/json"},
            )
            assert r.status == 400
            r = await c.post("/things", data=b"name=x", headers={**h, "Content-Type": "text/plain"})
            assert r.status == 415
        finally:
            await c.close()

    _run(go())


def test_a_browser_opening_a_broken_link_gets_a_page_in_words_a_program_json() -> None:
    """A customer's expired or mistyped link (a booking page, a shared scene) showed the
    API's JSON, with its regex; a browser asking for HTML now gets the status as a page."""

    async def go() -> None:
        c = await _client()
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        try:
            r = await c.get("/links/1.old", headers=browser)
            page = await r.text()
            assert r.status == 410 and r.content_type == "text/html"
            assert '<html lang="en">' in page and 'name="viewport"' in page
            assert "<h1>This link no longer works</h1>" in page
            assert "This link has expired." in page
            r = await c.get("/links/not-a-token", headers=browser)
            page = await r.text()
            assert r.status == 404 and r.content_type == "text/html"
            assert "<h1>This link leads nowhere</h1>" in page and "regex" not in page
            # a program (no text/html asked for) still gets the JSON, and so does the API
            r = await c.get("/links/1.old")
            assert r.status == 410 and (await r.json())["error"]["code"] == "gone"
            r = await c.get("/things/3", headers={**browser, "Authorization": "Bearer rep"})
            assert r.status == 404 and r.content_type == "text/html"
            r = await c.get("/links/1.ok", headers=browser)
            assert r.status == 200 and await r.text() == "<p>page</p>"
        finally:
            await c.close()

    _run(go())


def test_access_is_declared_and_enforced() -> None:
    async def go() -> None:
        c = await _client()
        try:
            r = await c.get("/things/4")
            assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
            r = await c.post(
                "/things", json={"name": "x"}, headers={"Authorization": "Bearer viewer"}
            )
            assert r.status == 403
            r = await c.get("/things/3", headers={"Authorization": "Bearer rep"})
            assert r.status == 404  # the scope hides it
            r = await c.get("/things/3", headers={"Authorization": "Bearer viewer"})
            assert r.status == 200
            r = await c.get("/open")
            assert r.status == 200
        finally:
            await c.close()

    _run(go())

    with pytest.raises(ValueError, match="scope"):
        Access.read()
    with pytest.raises(ValueError, match="why"):
        Access.public("")
    app = _app()

    async def sneaky(_: web.Request) -> web.Response:
        return web.Response(text="no policy")

    app.router.add_get("/sneaky", sneaky)
    assert undeclared_routes(app) == ["GET /sneaky"]


def test_openapi_document_is_generated_for_every_route() -> None:
    async def go() -> None:
        c = await _client()
        try:
            doc = await (await c.get("/api/v1/openapi.json")).json()
        finally:
            await c.close()
        assert doc["openapi"].startswith("3.1")
        op = doc["paths"]["/things/{thing_id}"]["get"]
        names = {p["name"]: p for p in op["parameters"]}
        assert names["thing_id"]["in"] == "path" and names["limit"]["schema"]["maximum"] == 100
        assert "404" in op["responses"] and "401" in op["responses"]
        post = doc["paths"]["/things"]["post"]
        assert "201" in post["responses"] and "403" in post["responses"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "NewThing"
        )
        assert doc["paths"]["/open"]["get"]["security"] == []

    _run(go())


def test_json_depth_and_text_limits() -> None:
    assert json_depth(b'{"a": "[[[[[[", "b": [1, [2]]}') == 3
    assert json_depth(b'["\\\\", [[]]]') == 3
    assert json_depth(b'["\\"[[[[", 1]') == 1
    assert json_depth(b"[" * 10_000) == 10_000
    assert text_problem("fine text") is None
    assert text_problem("a\x00b") is not None
    assert text_problem("line\nbreak") is not None
    assert text_problem("line\nbreak", multiline=True) is None
    assert text_problem("\ud800") is not None


def test_invalid_utf8_inside_a_json_string_is_a_400() -> None:
    """msgspec checks UTF-8 only when it decodes a string (was a 500)."""

    async def go() -> None:
        c = await _client()
        h = {"Authorization": "Bearer admin", "Content-Type": "application/json"}
        try:
            for raw in (b'{"name": "\xc3("}', b'{"name": "ok", "extra": {"k": "\xff"}}'):
                r = await c.post("/things", data=raw, headers=h)
                body = await r.json()
                assert r.status == 400, body
                assert body["error"]["code"] == "invalid_json"
                assert "UTF-8" in body["error"]["message"]
        finally:
            await c.close()

    _run(go())


def test_a_body_that_does_not_match_its_content_encoding_is_a_400() -> None:
    """gzip that is not gzip failed inside aiohttp's reader (was a 500); real gzip reads."""
    import gzip

    async def go() -> None:
        c = await _client()
        h = {
            "Authorization": "Bearer admin",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        try:
            r = await c.post("/things", data=gzip.compress(b'{"name": "zipped"}'), headers=h)
            assert r.status == 201 and (await r.json())["name"] == "zipped"
            r = await c.post("/things", data=b'{"name": "plain"}', headers=h)
            body = await r.json()
            assert r.status == 400 and body["error"]["code"] == "bad_body", body
            assert "content-encoding" in body["error"]["message"].lower(), body
        finally:
            await c.close()

    _run(go())
