"""Global search over CRM records: one query text, several record types, ranked, typo-tolerant.

How a query runs (indexes of migration c2001), in two statements whatever the table sizes:

1. Expand: the query's words (`crm_search_words`: lower-cased `simple` lexemes) are looked up
   in the lexicon `search_words` (every distinct word of every searchable name, a small
   table): each word expands to itself if known, to up to PREFIX_WORDS words it begins
   (type-ahead) and to up to SIMILAR_WORDS words similar to it (pg_trgm `similarity` >=
   THRESHOLD, so "schmdit" expands to "schmidt"). A query word with no expansion at all is
   dropped (unless every word is), so one unknown word does not hide the rest.
2. Match: per type, records whose word array contains every query word as typed (exact
   tier), then records whose words overlap every word's expansion (typo/prefix tier), each
   an intersection in the type's GIN index with its own LIMIT; contacts and leads also
   match an e-mail prefix or the last digits of a phone number (btree indexes; a leading
   0 typed is dropped, so "06 12 34 56 78" finds "+33 6 12 34 56 78"). Each type's
   statement carries the caller's record-level access clause, so a hit is always a record
   they may open; the types are one UNION ALL.

Ranking: exact-tier hits first, then by `word_similarity(query, names)`; the typo tier is
ranked among its first FUZZY_POOL matches (a very common expansion is sampled, not sorted
in full: that bounds the cost at any table size).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES
from crm.store import scope
from kernel.principal import Principal

THRESHOLD = 0.25  # pg_trgm similarity for a word to count as a spelling of another
PREFIX_WORDS = 20  # words a query word may be the beginning of
SIMILAR_WORDS = 40  # words a query word may be a misspelling of
FUZZY_POOL = 200  # typo-tier matches ranked per type
BEST_WORDS = 3  # the closest spellings of a word, tried first
MAX_WORDS = 6  # query words used


def _names(*cols: str) -> str:
    return " || ' ' || ".join(f"coalesce(t.{c}, '')" for c in cols)


@dataclass(frozen=True, slots=True)
class Document:
    entity: str
    names: str  # the indexed names expression (alias t), as in migration c2001
    label: str  # what a hit shows
    detail: str  # a second line
    contact_points: bool = False  # also e-mail prefix and phone suffix


_PERSON = "nullif(trim(coalesce(t.first_name, '') || ' ' || coalesce(t.last_name, '')), '')"
DOCUMENTS: dict[str, Document] = {
    "accounts": Document(
        "accounts", _names("name"), "t.name", "t.type || coalesce(' · ' || t.address, '')"
    ),
    "contacts": Document(
        "contacts",
        _names("first_name", "last_name", "company_name"),
        f"coalesce({_PERSON}, t.company_name, t.email, 'contact')",
        "concat_ws(' · ', t.title, t.email, t.phone)",
        contact_points=True,
    ),
    "leads": Document(
        "leads",
        _names("first_name", "last_name", "company"),
        f"coalesce({_PERSON}, t.company, t.email, 'lead')",
        "concat_ws(' · ', t.company, t.email, t.status)",
        contact_points=True,
    ),
    "opportunities": Document(
        "opportunities",
        _names("name"),
        "t.name",
        "t.status || ' · ' || t.amount::text || ' ' || t.currency",
    ),
    "work_orders": Document(
        "work_orders", _names("title"), "t.title", "t.status || ' · ' || t.priority"
    ),
}


@dataclass(frozen=True, slots=True)
class Hit:
    type: str
    id: str
    label: str
    detail: str
    score: float


def like_pattern(text: str) -> str:
    return "%" + like_escape(text) + "%"


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_EXPAND = """
SELECT q.w, q.n, array(
    SELECT c.word FROM (
        (SELECT word, 2.0 AS score FROM search_words WHERE word = q.w)
        UNION ALL
        (SELECT word, similarity(word, q.w) FROM search_words
          WHERE length(q.w) >= 2 AND word LIKE replace(replace(replace(q.w, '\\', '\\\\'),
                '%%', '\\%%'), '_', '\\_') || '%%'
          ORDER BY word LIMIT %(prefix)s)
        UNION ALL
        (SELECT word, similarity(word, q.w) FROM search_words
          WHERE length(q.w) >= 3 AND word %% q.w
          ORDER BY similarity(word, q.w) DESC, word LIMIT %(similar)s)
    ) c GROUP BY c.word ORDER BY max(c.score) DESC, c.word)
FROM unnest(crm_search_words(%(text)s)) WITH ORDINALITY AS q(w, n)
ORDER BY q.n LIMIT %(words)s
"""


async def expand(conn: AsyncConnection[Any], text: str) -> list[tuple[str, list[str]]]:
    """The query's words, each with the lexicon words it may stand for."""
    # enable_seqscan off for this transaction: with a LIMIT, a rare word's selectivity
    # misjudged makes a sequential scan look cheap, and at 1M rows it is not
    await conn.execute(
        "SELECT set_config('pg_trgm.similarity_threshold', %s, true),"
        " set_config('enable_seqscan', 'off', true)",
        (str(THRESHOLD),),
    )
    cur = await conn.execute(
        _EXPAND,
        {"text": text, "prefix": PREFIX_WORDS, "similar": SIMILAR_WORDS, "words": MAX_WORDS},
    )
    return [(r[0], list(r[2])) for r in await cur.fetchall()]


_DIGITS = re.compile(r"[^0-9]")


def _type_query(
    name: str,
    principal: Principal,
    text: str,
    words: list[tuple[str, list[str]]],
    limit: int,
) -> tuple[sql.Composable, list[Any]]:
    doc = DOCUMENTS[name]
    acc, acc_p = scope(ENTITIES[name], principal)
    table = sql.Identifier(ENTITIES[name].table)
    arr = sql.SQL("crm_search_words({})").format(sql.SQL(doc.names))
    row = sql.SQL("t.id, {label}, coalesce({detail}, ''), similarity(%s, {names})").format(
        label=sql.SQL(doc.label), detail=sql.SQL(doc.detail), names=sql.SQL(doc.names)
    )
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if words and all(w in c for w, c in words):  # every word as typed is a known word
        exact = [w for w, _ in words]
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE {arr} @> %s::text[] AND {acc}"
                " LIMIT %s)"
            ).format(row=row, table=table, arr=arr, acc=acc)
        )
        params += [text, exact, *acc_p, limit]
    if words and any(c != [w] for w, c in words):  # else the exact tier has it all
        overlap = sql.SQL(" AND ").join(sql.SQL("{} && %s::text[]").format(arr) for _ in words)
        # the closest few spellings of each word first, then any of them: a common word's
        # many spellings cannot crowd the likeliest record out of the ranked pool
        for bonus, cut in ((0.5, BEST_WORDS), (0.0, None)):
            parts.append(
                sql.SQL(
                    "(SELECT {row} + %s AS score FROM {table} t WHERE {overlap} AND {acc} LIMIT %s)"
                ).format(row=row, table=table, overlap=overlap, acc=acc)
            )
            params += [text, bonus, *[c[:cut] for _, c in words], *acc_p, FUZZY_POOL]
    if doc.contact_points and " " not in text and len(text) >= 3:
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE email IS NOT NULL"
                " AND lower(email) LIKE %s AND {acc} LIMIT %s)"
            ).format(row=row, table=table, acc=acc)
        )
        params += [text, like_escape(text.lower()) + "%", *acc_p, limit]
    # the number's last digits; a national trunk 0 is not part of the international form
    digits = _DIGITS.sub("", text).lstrip("0")
    if doc.contact_points and len(digits) >= 4 and len(digits) * 2 >= len(text.replace(" ", "")):
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE phone IS NOT NULL"
                " AND reverse(regexp_replace(phone, '[^0-9]', '', 'g')) LIKE %s AND {acc}"
                " LIMIT %s)"
            ).format(row=row, table=table, acc=acc)
        )
        params += [text, digits[::-1] + "%", *acc_p, limit]
    if not parts:
        return sql.SQL(""), []
    stmt = sql.SQL(
        "(SELECT %s::text, id::text, label, detail, max(score) FROM ({parts}) m(id, label, detail,"
        " score) GROUP BY id, label, detail ORDER BY max(score) DESC, id LIMIT %s)"
    ).format(parts=sql.SQL(" UNION ALL ").join(parts))
    return stmt, [name, *params, limit]


async def search(
    conn: AsyncConnection[Any], principal: Principal, text: str, types: list[str], limit: int
) -> list[Hit]:
    """The best `limit` hits of each type in `types`, best first within each type."""
    expanded = await expand(conn, text)
    known = [(w, c) for w, c in expanded if c]
    words = known or expanded  # an unknown word is dropped unless all are unknown
    queries = [_type_query(name, principal, text, words, limit) for name in types]
    queries = [(q, p) for q, p in queries if p]
    if not queries:
        return []
    stmt = sql.SQL(" UNION ALL ").join(q for q, _ in queries)
    params = [x for _, p in queries for x in p]
    rows = await (await conn.execute(stmt, params)).fetchall()
    return [Hit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
