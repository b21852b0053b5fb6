"""The knowledge base: articles (how-tos, equipment manuals, FAQs) kept in the CRM's database.

Access, as the CRM's records: everyone reads the articles of no territory and those of a
territory they may see (admins and viewers: all); managers and admins write (a manager
only articles of no territory or of their team's territories). `audience = 'public'` marks
what the customer-facing bot may quote to website visitors; it reads nothing else.

Search by relevance, in two steps:

1. PostgreSQL full text (English stemming, the title weighted A, tags B, the body C)
   finds candidates matching any of the query's words (an OR query: a question names more
   words than an article's title has), ranked by `ts_rank_cd`, at most 50.
2. Each candidate is scored by BM25's idea of which words matter: every query word counts
   with its inverse document frequency over the articles the reader may see, times where it
   matched (title 1.0, tags 0.8, body only 0.6). The score is that sum over the sum of every
   query word's weight, so it lies in 0-1 and is low when the question's rare words (the
   thing asked about) are missing from the article, whatever else matches: it is the
   answer's confidence. A word no article has counts fully against every article. A
   sliver of the title's trigram similarity (pg_trgm) and the full-text rank break ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from kernel.errors import NotFound, Unprocessable
from kernel.principal import Forbidden, Principal

Conn = AsyncConnection[Any]
KINDS = ("howto", "manual", "faq")
AUDIENCES = ("internal", "public")
MAX_QUERY_CHARS = 500
MAX_TERMS = 16
CANDIDATES = 50
WEIGHT_TITLE, WEIGHT_TAGS, WEIGHT_BODY = 1.0, 0.8, 0.6
COLUMNS = (
    "a.id, a.kind, a.title, a.body, a.tags, a.territory_id, a.audience, a.created_by,"
    " a.updated_by, a.created_at, a.updated_at"
)


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    kind: str
    title: str
    snippet: str
    score: float
    audience: str
    updated_at: datetime


def readable(principal: Principal | None, alias: str = "a") -> tuple[sql.Composable, list[Any]]:
    """Articles `principal` may read; None is the customer bot: public articles only."""
    a = sql.Identifier(alias)
    if principal is None:
        return sql.SQL("{}.audience = 'public'").format(a), []
    if principal.sees_everything:
        return sql.SQL("TRUE"), []
    return sql.SQL("({a}.territory_id IS NULL OR {a}.territory_id = ANY(%s))").format(a=a), [
        list(principal.team_territory_ids)
    ]


def check_write(principal: Principal, territory_id: int | None) -> None:
    """Managers and admins write; a manager only where their team works (or everywhere)."""
    if principal.role not in ("admin", "manager"):
        raise Forbidden("only managers and admins write knowledge base articles")
    if (
        principal.role == "manager"
        and territory_id is not None
        and territory_id not in principal.team_territory_ids
    ):
        raise Forbidden("a manager writes articles of their team's territories only")


def score(weights: list[float], found: list[float]) -> float:
    """Weighted coverage (pure): Σ idf·where-matched / Σ idf over the query's words."""
    total = sum(weights)
    return sum(w * f for w, f in zip(weights, found, strict=True)) / total if total else 0.0


def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


async def terms(conn: Conn, text: str) -> list[str]:
    """The query's distinct English stems, stop words dropped (PostgreSQL's own parser)."""
    cur = await conn.execute(
        "SELECT lex FROM unnest(tsvector_to_array(to_tsvector('english', %s))) lex LIMIT %s",
        (text[:MAX_QUERY_CHARS], MAX_TERMS),
    )
    return [str(r[0]) for r in await cur.fetchall()]


def _lexeme(stem: str, weights: str = "") -> str:
    return "'" + stem.replace("'", "''") + "'" + (f":{weights}" if weights else "")


async def search(
    conn: Conn,
    text: str,
    principal: Principal | None,
    *,
    limit: int = 5,
    kind: str | None = None,
) -> list[Hit]:
    """The articles best answering `text` that `principal` may read, best first."""
    stems = await terms(conn, text)
    if not stems:
        return []
    where, params = readable(principal)
    if kind is not None:
        where = sql.SQL("{} AND a.kind = %s").format(where)
        params = [*params, kind]
    orq = " | ".join(_lexeme(s) for s in stems)
    # document frequency of every stem over what the reader may see
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE a.search @@ to_tsquery('simple', %s))") for _ in stems
    )
    cur = await conn.execute(
        sql.SQL("SELECT count(*), {} FROM assistant_articles a WHERE {}").format(counts, where),
        [*(_lexeme(s) for s in stems), *params],
    )
    row = await cur.fetchone()
    assert row is not None
    n_docs = int(row[0])
    weights = [idf(n_docs, int(df)) for df in row[1:]]
    flags = sql.SQL(", ").join(
        sql.SQL(
            "array[a.search @@ to_tsquery('simple', %s), a.search @@ to_tsquery('simple', %s),"
            " a.search @@ to_tsquery('simple', %s)]"
        )
        for _ in stems
    )
    flag_params: list[Any] = []
    for stem in stems:
        flag_params += [_lexeme(stem, "A"), _lexeme(stem, "B"), _lexeme(stem)]
    query = sql.SQL(
        "SELECT a.id, a.kind, a.title, a.audience, a.updated_at,"
        " ts_rank_cd(a.search, to_tsquery('simple', %s), 1) AS rank,"
        " similarity(lower(a.title), lower(%s)) AS title_sim,"
        " ts_headline('english', a.body, to_tsquery('simple', %s),"
        '   \'MaxWords=40, MinWords=20, ShortWord=2, StartSel="", StopSel="", MaxFragments=1\')'
        "   AS snippet,"
        " array[{}] AS found"
        " FROM assistant_articles a"
        " WHERE a.search @@ to_tsquery('simple', %s) AND {}"
        " ORDER BY rank DESC, a.id LIMIT %s"
    ).format(flags, where)
    dcur = conn.cursor(row_factory=dict_row)
    await dcur.execute(
        query, [orq, text[:MAX_QUERY_CHARS], orq, *flag_params, orq, *params, CANDIDATES]
    )
    hits: list[Hit] = []
    for r in await dcur.fetchall():
        found = [
            WEIGHT_TITLE if f[0] else WEIGHT_TAGS if f[1] else WEIGHT_BODY if f[2] else 0.0
            for f in r["found"]
        ]
        value = (
            0.9 * score(weights, found)
            + 0.05 * float(r["title_sim"])
            + 0.05 * min(float(r["rank"]) * 5, 1.0)
        )
        snippet = " ".join(str(r["snippet"]).split())
        hits.append(
            Hit(
                r["id"],
                r["kind"],
                r["title"],
                snippet,
                round(value, 4),
                r["audience"],
                r["updated_at"],
            )
        )
    hits.sort(key=lambda h: (-h.score, h.id))
    return hits[:limit]


# --------------------------------------------------------------------------- records


async def get(conn: Conn, principal: Principal, article_id: int) -> dict[str, Any]:
    where, params = readable(principal)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("SELECT " + COLUMNS + " FROM assistant_articles a WHERE a.id = %s AND {}").format(
            where
        ),
        [article_id, *params],
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no article {article_id}", field="article_id")
    return row


async def public_article(conn: Conn, article_id: int) -> dict[str, Any]:
    """A public article, for the customer bot's link (nothing else is shown to visitors)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT a.id, a.kind, a.title, a.body, a.updated_at FROM assistant_articles a"
        " WHERE a.id = %s AND a.audience = 'public'",
        (article_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no article {article_id}", field="article_id")
    return row


async def listed(
    conn: Conn, principal: Principal, *, kind: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    where, params = readable(principal)
    if kind is not None:
        where = sql.SQL("{} AND a.kind = %s").format(where)
        params = [*params, kind]
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            "SELECT " + COLUMNS + ", count(*) OVER () AS total FROM assistant_articles a"
            " WHERE {} ORDER BY a.updated_at DESC, a.id DESC LIMIT %s OFFSET %s"
        ).format(where),
        [*params, limit, offset],
    )
    rows = await cur.fetchall()
    total = int(rows[0]["total"]) if rows else 0
    return [{k: v for k, v in r.items() if k != "total"} for r in rows], total


async def _check_territory(conn: Conn, territory_id: int | None) -> None:
    if territory_id is None:
        return
    cur = await conn.execute("SELECT 1 FROM territories WHERE id = %s", (territory_id,))
    if await cur.fetchone() is None:
        raise Unprocessable(f"no territory {territory_id}", field="territory_id")


async def create(conn: Conn, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    check_write(principal, values.get("territory_id"))
    await _check_territory(conn, values.get("territory_id"))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "INSERT INTO assistant_articles AS a (kind, title, body, tags, territory_id, audience,"
        " created_by, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING " + COLUMNS,
        (
            values["kind"],
            values["title"],
            values["body"],
            values["tags"],
            values.get("territory_id"),
            values["audience"],
            principal.user_id,
            principal.user_id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def update(
    conn: Conn, principal: Principal, article_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    old = await get(conn, principal, article_id)  # 404 when it may not be seen
    check_write(principal, old["territory_id"])
    if "territory_id" in changes:
        check_write(principal, changes["territory_id"])
        await _check_territory(conn, changes["territory_id"])
    if not changes:
        return old
    sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in sorted(changes))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            "UPDATE assistant_articles AS a SET {}, updated_by = %s, updated_at = now()"
            " WHERE a.id = %s RETURNING " + COLUMNS
        ).format(sets),
        [*(changes[k] for k in sorted(changes)), principal.user_id, article_id],
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def delete(conn: Conn, principal: Principal, article_id: int) -> None:
    old = await get(conn, principal, article_id)
    check_write(principal, old["territory_id"])
    await conn.execute("DELETE FROM assistant_articles WHERE id = %s", (article_id,))
