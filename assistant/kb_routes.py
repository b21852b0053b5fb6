"""The knowledge base over HTTP.

    GET    /api/v1/assistant/articles            list (newest first) or, with `q`, search
    GET    /api/v1/assistant/articles/{id}       one article
    POST   /api/v1/assistant/articles            write one (managers, admins)
    PATCH  /api/v1/assistant/articles/{id}       change one (managers, admins)
    DELETE /api/v1/assistant/articles/{id}       delete one (managers, admins)
    GET    /help/articles/{id}                   a public article as a page (the bot's links)

Who reads and writes what is assistant.kb's rule: everyone reads articles of no territory
and of territories they may see; managers and admins write (a manager where their team
works); an article the caller may not read is a 404. Visitors read only public articles.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from assistant import kb
from kernel.http import Access, Reply, Req, Routes
from kernel.pages import page_headers

routes = Routes("assistant-kb", "The knowledge base: how-tos, equipment manuals and FAQs")
API = "/api/v1/assistant/articles"

Kind = Literal["howto", "manual", "faq"]
Audience = Literal["internal", "public"]
# a title, text or tag of spaces alone is none: refused like an empty one
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"\S")]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000, pattern=r"\S")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"\S")]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=20)]
TerritoryId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class ArticleIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title
    body: Annotated[Body, msgspec.Meta(description="plain text; paragraphs by blank lines")]
    kind: Kind = "howto"
    tags: Tags = []
    territory_id: (
        Annotated[TerritoryId, msgspec.Meta(description="none: every user reads it")] | None
    ) = None
    audience: Annotated[
        Audience, msgspec.Meta(description="public: the customer bot may quote it to visitors")
    ] = "internal"


class ArticlePatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Title | None = None
    body: Body | None = None
    kind: Kind | None = None
    tags: Tags | None = None
    territory_id: TerritoryId | None = None
    clear_territory: Annotated[
        bool, msgspec.Meta(description="make the article every user's (no territory)")
    ] = False
    audience: Audience | None = None


class Article(msgspec.Struct, frozen=True):
    id: int
    kind: str
    title: str
    body: str
    tags: list[str]
    territory_id: int | None
    audience: str
    created_by: int | None
    updated_by: int | None
    created_at: datetime
    updated_at: datetime
    link: str


class ArticleItem(msgspec.Struct, frozen=True):
    id: int
    kind: str
    title: str
    audience: str
    updated_at: datetime
    snippet: str
    score: float | None
    link: str


class ArticleList(msgspec.Struct, frozen=True):
    items: list[ArticleItem]
    total: int


class ArticleQuery(msgspec.Struct, frozen=True):
    q: (
        Annotated[
            str,
            msgspec.Meta(min_length=1, max_length=500, description="a question or key words"),
        ]
        | None
    ) = None
    kind: Kind | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20
    offset: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0


class ArticlePath(msgspec.Struct, frozen=True):
    article_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


def console_link(article_id: int) -> str:
    return f"/console/#/kb/{article_id}"


def _article(row: dict[str, object]) -> Article:
    return msgspec.convert({**row, "link": console_link(int(str(row["id"])))}, Article)


_READ = "articles of no territory or of a territory the caller may see (404 otherwise)"
_WRITE = "managers and admins; a manager only articles of no territory or of their team's"


@routes.get(
    API,
    access=Access.read(unscoped=_READ),
    summary="Knowledge base articles: newest first, or the best answers to `q` with a score",
)
async def list_articles(req: Req, query: ArticleQuery) -> ArticleList:
    async with req.connection() as conn:
        if query.q is not None:
            hits = await kb.search(
                conn, query.q, req.user, limit=query.limit + query.offset, kind=query.kind
            )
            page = hits[query.offset :]
            return ArticleList(
                [
                    ArticleItem(
                        h.id,
                        h.kind,
                        h.title,
                        h.audience,
                        h.updated_at,
                        h.snippet,
                        h.score,
                        console_link(h.id),
                    )
                    for h in page
                ],
                len(hits),
            )
        rows, total = await kb.listed(
            conn, req.user, kind=query.kind, limit=query.limit, offset=query.offset
        )
    return ArticleList(
        [
            ArticleItem(
                r["id"],
                r["kind"],
                r["title"],
                r["audience"],
                r["updated_at"],
                " ".join(str(r["body"]).split())[:200],
                None,
                console_link(r["id"]),
            )
            for r in rows
        ],
        total,
    )


@routes.get(
    f"{API}/{{article_id}}",
    access=Access.read(unscoped=_READ),
    summary="One knowledge base article",
    errors=(404,),
)
async def get_article(req: Req, path: ArticlePath) -> Article:
    async with req.connection() as conn:
        return _article(await kb.get(conn, req.user, path.article_id))


@routes.post(
    API,
    access=Access.managers(unscoped=_WRITE),
    summary="Write a knowledge base article",
    status=201,
    errors=(403, 422),
    max_body_bytes=256 * 1024,
)
async def create_article(req: Req, body: ArticleIn) -> Article:
    async with req.connection() as conn:
        row = await kb.create(conn, req.user, msgspec.structs.asdict(body))
    return _article(row)


@routes.patch(
    f"{API}/{{article_id}}",
    access=Access.managers(unscoped=_WRITE),
    summary="Change a knowledge base article",
    errors=(403, 404, 422),
    max_body_bytes=256 * 1024,
)
async def patch_article(req: Req, path: ArticlePath, body: ArticlePatch) -> Article:
    changes = {
        k: v
        for k, v in msgspec.structs.asdict(body).items()
        if v is not None and k != "clear_territory"
    }
    if body.clear_territory:
        changes["territory_id"] = None
    async with req.connection() as conn, conn.transaction():
        row = await kb.update(conn, req.user, path.article_id, changes)
    return _article(row)


@routes.delete(
    f"{API}/{{article_id}}",
    access=Access.managers(unscoped=_WRITE),
    summary="Delete a knowledge base article",
    status=204,
    errors=(403, 404),
)
async def delete_article(req: Req, path: ArticlePath) -> Reply[None]:
    async with req.connection() as conn, conn.transaction():
        await kb.delete(conn, req.user, path.article_id)
    return Reply(None, status=204)


_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@routes.get(
    "/help/articles/{article_id}",
    access=Access.public(
        "a public knowledge base article (audience 'public', written to be quoted to "
        "customers); any other article is a 404"
    ),
    summary="A public knowledge base article as a page (the customer bot links to it)",
    content_type="text/html",
    errors=(404,),
)
async def help_page(req: Req, path: ArticlePath) -> web.StreamResponse:
    async with req.connection() as conn:
        row = await kb.public_article(conn, path.article_id)
    # paragraphs by blank lines, as the console shows them (also "\r\n\r\n", or a line of
    # spaces); the text in a main landmark, and a long word (a part number, a URL) wraps
    # instead of widening the page on a phone
    paras = "".join(
        f"<p>{html.escape(p.strip())}</p>"
        for p in re.split(r"\r?\n[ \t\r]*\n", str(row["body"]))
        if p.strip()
    )
    title = html.escape(str(row["title"]))
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>body{{font:16px/1.5 sans-serif;max-width:40em;"
        "margin:2em auto;padding:0 1em;overflow-wrap:anywhere}</style></head>"
        f"<body><main><h1>{title}</h1>{paras}</main></body></html>"
    )
    headers = page_headers(_CSP, referrer="no-referrer")
    headers["Cache-Control"] = "public, max-age=60"
    return web.Response(text=page, content_type="text/html", headers=headers)


def setup(app: web.Application) -> None:
    routes.mount(app)
