"""Global search over CRM records: one query text, several record types, ranked, typo-tolerant.

How a query runs (indexes of migration c2001), in two statements whatever the table sizes:

1. Expand: the query's words (`crm_search_words`: lower-cased `simple` lexemes) are looked up
   in the lexicon `search_words` (every distinct word of every searchable name, a small
   table): each word expands to itself if known, to up to PREFIX_WORDS words it begins
   (type-ahead) and to up to SIMILAR_WORDS words similar to it (pg_trgm `similarity` >=
   THRESHOLD and at most MAX_EDITS letters longer or shorter, so "schmdit" expands to
   "schmidt"). A query word with no expansion at all is dropped (unless every word is), so
   one unknown word does not hide the rest; a one-letter word counts only when the query
   has no longer one.
2. Match: per type, records whose word array contains every query word as typed (exact
   tier), then records whose words overlap every word's expansion (typo/prefix tier), each
   an intersection in the type's GIN index with its own LIMIT; contacts and leads also
   match an e-mail prefix or the last digits of a phone number (btree indexes; a leading
   0 typed is dropped, so "06 12 34 56 78" finds "+33 6 12 34 56 78"). Each type's
   statement carries the caller's record-level access clause, so a hit is always a record
   they may open; the types are one UNION ALL.

Ranking: exact-tier hits first, then by `similarity(query, names)`; the typo tier is
ranked among its first FUZZY_POOL matches (a very common expansion is sampled, not sorted
in full: that bounds the cost at any table size).

Round trips and planning: both statements are sent as one pipeline each (psycopg pipeline
mode: the settings and the statement travel together, and run in one implicit transaction
that the settings last for), and both are server-side prepared statements planned once per
connection with a generic plan (`plan_cache_mode`), whatever the words: a search costs two
round trips and no planning once a connection has seen its shape. `enable_seqscan` is off in
that transaction (a misjudged rare word must not make a scan of a million rows look cheap,
and a generic plan cannot judge the words at all), and `statement_timeout` bounds any one
search.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.errors import QueryCanceled
from psycopg.pq import TransactionStatus

from crm.entities import ENTITIES
from crm.store import scope
from kernel.errors import Unavailable
from kernel.principal import Principal

THRESHOLD = 0.25  # pg_trgm similarity for a word to count as a spelling of another
PREFIX_WORDS = 20  # words a query word may be the beginning of
SIMILAR_WORDS = 40  # words a query word may be a misspelling of
FUZZY_POOL = 200  # typo-tier matches ranked per type
BEST_WORDS = 3  # the closest spellings of a word, tried first
MAX_WORDS = 6  # query words used
# a misspelling is at most this many letters longer or shorter than the word (a word of
# another length is another word: "maria" is not a typo of "martin983", and a common word
# taken for one costs a long posting list in every type's index)
MAX_EDITS = 2
TIMEOUT_MS = 5000  # a statement of a search that takes longer is cancelled: 503


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
        # the amount as people write it (33,300 EUR, not 33300.00 EUR)
        "concat_ws(' · ', t.status, regexp_replace(to_char(t.amount,"
        " 'FM9,999,999,999,999,999,990.00'), '\\.00$', '') || ' ' || t.currency)",
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
          WHERE length(q.w) >= 2 AND word >= q.w COLLATE "C"
            AND word < (q.w || chr(1114111)) COLLATE "C"
          ORDER BY word LIMIT %(prefix)s)
        UNION ALL
        (SELECT word, similarity(word, q.w) FROM search_words
          WHERE length(q.w) >= 3 AND word %% q.w
            AND abs(length(word) - length(q.w)) <= %(edits)s
          ORDER BY similarity(word, q.w) DESC, word LIMIT %(similar)s)
    ) c GROUP BY c.word ORDER BY max(c.score) DESC, c.word)
FROM unnest(crm_search_words(%(text)s)) WITH ORDINALITY AS q(w, n)
ORDER BY q.n LIMIT %(words)s
"""


# Sent ahead of each statement, in its pipeline: the settings last for that implicit
# transaction only (is_local), so a pooled connection goes back unchanged.
_SETTINGS = (
    "SELECT set_config('pg_trgm.similarity_threshold', %s, true),"
    " set_config('enable_seqscan', 'off', true),"
    " set_config('plan_cache_mode', 'force_generic_plan', true),"
    " set_config('statement_timeout', %s, true)"
)


async def _run(conn: AsyncConnection[Any], query: Any, params: Any) -> list[tuple[Any, ...]]:
    """One round trip: the settings and `query` in one pipeline (one implicit transaction),
    `query` a prepared statement."""
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        # in a transaction the settings would outlive the search
        raise ValueError("crm.search needs an autocommit connection outside a transaction")
    try:
        async with conn.pipeline():
            await conn.execute(_SETTINGS, (str(THRESHOLD), f"{TIMEOUT_MS}ms"), prepare=True)
            cur = await conn.execute(query, params, prepare=True)
        return await cur.fetchall()
    except QueryCanceled:
        raise Unavailable("the search took too long: try more or longer words") from None


async def expand(conn: AsyncConnection[Any], text: str) -> list[tuple[str, list[str]]]:
    """The query's words, each with the lexicon words it may stand for."""
    rows = await _run(
        conn,
        _EXPAND,
        {
            "text": text,
            "prefix": PREFIX_WORDS,
            "similar": SIMILAR_WORDS,
            "edits": MAX_EDITS,
            "words": MAX_WORDS,
        },
    )
    return [(r[0], list(r[2])) for r in rows]


_DIGITS = re.compile(r"[^0-9]")


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds of the strings that begin with `prefix`, in byte order (text_pattern_ops'
    `~>=~` / `~<~`): a LIKE 'prefix%' that a prepared statement's generic plan can still
    answer from the index, which it cannot for a LIKE pattern given as a parameter."""
    return prefix, prefix + "\U0010ffff"


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
    lim = sql.Literal(limit)  # constants, not parameters: the generic plan knows them
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if words and all(w in c for w, c in words):  # every word as typed is a known word
        exact = [w for w, _ in words]
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE {arr} @> %s::text[] AND {acc}"
                " LIMIT {limit})"
            ).format(row=row, table=table, arr=arr, acc=acc, limit=lim)
        )
        params += [text, exact, *acc_p]
    if words and any(c != [w] for w, c in words):  # else the exact tier has it all
        overlap = sql.SQL(" AND ").join(sql.SQL("{} && %s::text[]").format(arr) for _ in words)
        # the closest few spellings of each word first, then any of them: a common word's
        # many spellings cannot crowd the likeliest record out of the ranked pool
        tiers: list[tuple[float, int | None]] = [(0.5, BEST_WORDS)]
        if any(len(c) > BEST_WORDS for _, c in words):  # else the same statement twice
            tiers.append((0.0, None))
        for bonus, cut in tiers:
            parts.append(
                sql.SQL(
                    "(SELECT {row} + {bonus} AS score FROM {table} t WHERE {overlap} AND {acc}"
                    " LIMIT {pool})"
                ).format(
                    row=row,
                    bonus=sql.Literal(bonus),
                    table=table,
                    overlap=overlap,
                    acc=acc,
                    pool=sql.Literal(FUZZY_POOL),
                )
            )
            params += [text, *[c[:cut] for _, c in words], *acc_p]
    if doc.contact_points and " " not in text and len(text) >= 3:
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE email IS NOT NULL"
                " AND lower(email) ~>=~ %s AND lower(email) ~<~ %s AND {acc} LIMIT {limit})"
            ).format(row=row, table=table, acc=acc, limit=lim)
        )
        params += [text, *_prefix_range(text.lower()), *acc_p]
    # the number's last digits; a national trunk 0 is not part of the international form
    digits = _DIGITS.sub("", text).lstrip("0")
    if doc.contact_points and len(digits) >= 4 and len(digits) * 2 >= len(text.replace(" ", "")):
        parts.append(
            sql.SQL(
                "(SELECT {row} + 1.0 AS score FROM {table} t WHERE phone IS NOT NULL"
                " AND reverse(regexp_replace(phone, '[^0-9]', '', 'g')) ~>=~ %s"
                " AND reverse(regexp_replace(phone, '[^0-9]', '', 'g')) ~<~ %s AND {acc}"
                " LIMIT {limit})"
            ).format(row=row, table=table, acc=acc, limit=lim)
        )
        params += [text, *_prefix_range(digits[::-1]), *acc_p]
    if not parts:
        return sql.SQL(""), []
    stmt = sql.SQL(
        "(SELECT %s::text, id::text, label, detail, max(score)::float8 FROM ({parts}) m(id, label, detail,"
        " score) GROUP BY id, label, detail ORDER BY max(score) DESC, id LIMIT {limit})"
    ).format(parts=sql.SQL(" UNION ALL ").join(parts), limit=lim)
    return stmt, [name, *params]


async def search(
    conn: AsyncConnection[Any],
    principal: Principal,
    text: str,
    types: list[str],
    limit: int,
    also: Sequence[tuple[sql.Composable, list[Any]]] = (),
) -> list[Hit]:
    """The best `limit` hits of each type in `types`, best first within each type.

    `also`: more (statement, params) branches of the same row shape (type, id, label,
    detail, score), e.g. another package's records, sent in the same round trip.
    `conn` must be in autocommit mode."""
    expanded = await expand(conn, text)
    # a lone letter beside longer words is a separator's leftover ("a_b12" -> "a", "b12"):
    # on its own it would match every record with that initial
    if any(len(w) > 1 for w, _ in expanded):
        expanded = [(w, c) for w, c in expanded if len(w) > 1]
    known = [(w, c) for w, c in expanded if c]
    words = known or expanded  # an unknown word is dropped unless all are unknown
    queries = [_type_query(name, principal, text, words, limit) for name in types]
    queries = [(q, p) for q, p in queries if p] + list(also)
    if not queries:
        return []
    stmt = sql.SQL(" UNION ALL ").join(q for q, _ in queries)
    params = [x for _, p in queries for x in p]
    rows = await _run(conn, stmt, params)
    return [Hit(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]
