"""Global search over CRM records: one query text, several record types, ranked, typo-tolerant.

Each type has a document (the text a person knows a record by: names, e-mail, phone),
indexed with trigrams (migration c1001). A record matches when the query is a substring of
its document, or when a word of the document is similar enough to the query
(`word_similarity` >= THRESHOLD, so "Jonh Smtih" still finds "John Smith"); results are ranked
by that similarity, exact substrings first. Every type's query carries the caller's
record-level access clause, so a hit is always a record they may open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from crm.entities import ENTITIES
from crm.store import scope
from kernel.principal import Principal

THRESHOLD = 0.35  # pg_trgm.word_similarity_threshold for this search


def _doc(*cols: str) -> str:
    return "(" + " || ' ' || ".join(f"coalesce(t.{c}, '')" for c in cols) + ")"


@dataclass(frozen=True, slots=True)
class Document:
    entity: str
    text: str  # the indexed expression (alias t), as in migration c1001
    label: str  # what a hit shows
    detail: str  # a second line


_PERSON = "nullif(trim(coalesce(t.first_name, '') || ' ' || coalesce(t.last_name, '')), '')"
DOCUMENTS: dict[str, Document] = {
    "accounts": Document(
        "accounts", "(coalesce(t.name, ''))", "t.name", "t.type || coalesce(' · ' || t.address, '')"
    ),
    "contacts": Document(
        "contacts",
        _doc("first_name", "last_name", "company_name", "email", "phone"),
        f"coalesce({_PERSON}, t.company_name, t.email, 'contact')",
        "concat_ws(' · ', t.title, t.email, t.phone)",
    ),
    "leads": Document(
        "leads",
        _doc("first_name", "last_name", "company", "email", "phone"),
        f"coalesce({_PERSON}, t.company, t.email, 'lead')",
        "concat_ws(' · ', t.company, t.email, t.status)",
    ),
    "opportunities": Document(
        "opportunities",
        "(coalesce(t.name, ''))",
        "t.name",
        "t.status || ' · ' || t.amount::text || ' ' || t.currency",
    ),
    "work_orders": Document(
        "work_orders", "(coalesce(t.title, ''))", "t.title", "t.status || ' · ' || t.priority"
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
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search(
    conn: AsyncConnection[Any], principal: Principal, text: str, types: list[str], limit: int
) -> list[Hit]:
    """The best `limit` hits of each type in `types`, ranked by similarity."""
    await conn.execute(
        "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)", (str(THRESHOLD),)
    )
    hits: list[Hit] = []
    for name in types:
        doc = DOCUMENTS[name]
        entity = ENTITIES[name]
        acc, acc_p = scope(entity, principal)
        stmt = sql.SQL(
            "SELECT t.id::text, {label}, coalesce({detail}, ''),"
            " CASE WHEN {text} ILIKE %s THEN 1.0 ELSE word_similarity(%s, {text}) END AS score"
            " FROM {table} t WHERE ({text} %%> %s OR {text} ILIKE %s) AND {acc}"
            " ORDER BY score DESC, t.id LIMIT %s"
        ).format(
            label=sql.SQL(doc.label),
            detail=sql.SQL(doc.detail),
            text=sql.SQL(doc.text),
            table=sql.Identifier(entity.table),
            acc=acc,
        )
        like = like_pattern(text)
        rows = await (await conn.execute(stmt, [like, text, text, like, *acc_p, limit])).fetchall()
        hits += [Hit(name, r[0], r[1], r[2], float(r[3])) for r in rows]
    return hits
