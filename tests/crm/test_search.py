"""crm.search against the real database: prepared generic plans that still find each
query's own records, settings that do not outlive a search, misspellings bounded by
length, literal e-mail prefixes, a time limit answered 503."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection, sql

from crm import search as crm_search
from kernel.errors import Unavailable
from kernel.principal import Principal

ADMIN = Principal(1, "admin@search.test", "admin", None, (1,), ())


def letters() -> str:
    """A tag of letters only: a word of its own, never split by the text parser."""
    return "".join(chr(97 + int(c, 16)) for c in uuid.uuid4().hex[:8])


def territory(db_dsn: str) -> int:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO territories (name) VALUES (%s) RETURNING id", (f"S {letters()}",)
        ).fetchone()
        assert row is not None
        return int(row[0])


def contact(db_dsn: str, first: str, last: str, tid: int, email: str | None = None) -> str:
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO contacts (first_name, last_name, email, territory_id)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (first, last, email, tid),
        ).fetchone()
        assert row is not None
        return str(row[0])


def rep_in(tid: int) -> Principal:
    return Principal(999_999, "rep@search.test", "rep", tid, (999_999,), (tid,))


async def _search(dsn: str, principal: Principal, texts: list[str], **kw: Any) -> list[Any]:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        return [
            await crm_search.search(conn, principal, t, kw.get("types", ["contacts"]), 5)
            for t in texts
        ]


def test_repeated_searches_of_one_shape_each_find_their_own_record(db_dsn: str) -> None:
    # one connection, one statement shape, ten different words: prepared once and then
    # answered by its generic plan, which must still look for the words given each time
    mine, other = territory(db_dsn), territory(db_dsn)
    tag = letters()
    names = [f"{n}{tag}" for n in ("Hollinger", "Trevanion", "Castellan", "Pendleton", "Ashcombe")]
    ids = {n: contact(db_dsn, "Rosalind", n, mine) for n in names}
    hidden = {n: contact(db_dsn, "Rosalind", n, other) for n in names}
    # a letter dropped from the first name, two letters swapped in the last
    typos = {n: f"Rosalnd {n[:2]}{n[3]}{n[2]}{n[4:]}" for n in names}
    texts = [typos[n] for n in names] * 2
    for who, expect_hidden in ((rep_in(mine), False), (ADMIN, True)):
        results = asyncio.run(_search(db_dsn, who, texts))
        for text, hits in zip(texts, results, strict=True):
            name = next(n for n, t in typos.items() if t == text)
            got = [h.id for h in hits]
            assert (hidden[name] in got) is expect_hidden
            # ranked first: the names share the tag, and so are spellings of each other
            best = {ids[name], hidden[name]} if expect_hidden else {ids[name]}
            assert set(got[: len(best)]) == best, (text, hits)


def test_a_search_leaves_its_connection_unchanged_and_refuses_a_transaction(
    db_dsn: str,
) -> None:
    async def go() -> tuple[list[Any], list[Any]]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            q = (
                "SELECT current_setting('enable_seqscan'), current_setting('plan_cache_mode'),"
                " current_setting('statement_timeout'),"
                " current_setting('pg_trgm.similarity_threshold', true)"
            )
            before = await (await conn.execute(q)).fetchall()
            await crm_search.search(conn, ADMIN, "anything at all", ["contacts", "accounts"], 5)
            after = await (await conn.execute(q)).fetchall()
            # pg_trgm's default appears once the library is loaded
            assert before[0][:3] == after[0][:3] and after[0][3] != str(crm_search.THRESHOLD)
            with pytest.raises(ValueError):
                async with conn.transaction():
                    await crm_search.search(conn, ADMIN, "anything", ["contacts"], 5)
            return before, after

    _, after = asyncio.run(go())
    assert after[0][0] == "on"


def test_a_word_of_another_length_is_not_taken_for_a_misspelling(db_dsn: str) -> None:
    tid, tag = territory(db_dsn), letters()
    long_word, short_word = f"zorvandel{tag}", f"zorva{tag}"
    contact(db_dsn, "Ada", long_word, tid)
    contact(db_dsn, "Ada", short_word, tid)
    typed = f"zorvandl{tag}"  # one letter dropped

    async def go() -> tuple[dict[str, list[str]], float]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            sim = await (
                await conn.execute("SELECT similarity(%s, %s)", (short_word, typed))
            ).fetchone()
            assert sim is not None
            return dict(await crm_search.expand(conn, typed)), float(sim[0])

    expanded, sim = asyncio.run(go())
    assert sim >= crm_search.THRESHOLD  # similar enough by trigrams alone...
    assert long_word in expanded[typed]
    assert short_word not in expanded[typed]  # ...but four letters shorter


def test_an_email_prefix_is_literal_and_found_through_the_prepared_plan(db_dsn: str) -> None:
    tid, tag = territory(db_dsn), letters()
    # names unlike the addresses: only the e-mail prefix can find these
    under = contact(db_dsn, "Eve", f"Under{letters()}", tid, email=f"a_b{tag}@x.test")
    plain = contact(db_dsn, "Eve", f"Plain{letters()}", tid, email=f"axb{tag}@x.test")
    # "a_b..." splits into the words "a" and "b...": a record named with the lone letter
    # must not be found by it
    contact(db_dsn, "Ann", "A", tid, email=f"ann{tag}@y.test")
    texts = [f"a_b{tag}", f"axb{tag}", f"A_B{tag}@X", f"axb{tag}@x.test"] * 2
    results = asyncio.run(_search(db_dsn, ADMIN, texts))
    for text, hits in zip(texts, results, strict=True):
        want = under if "_" in text else plain
        assert [h.id for h in hits] == [want], (text, hits)


def test_other_branches_share_the_statement_and_a_slow_one_is_a_503(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid, tag = territory(db_dsn), letters()
    made = contact(db_dsn, "Ivo", f"Branch{tag}", tid)
    extra = (
        sql.SQL("(SELECT 'devices'::text, %s::text, 'Pump'::text, ''::text, 0.75::float8)"),
        [f"dev-{tag}"],
    )

    async def go(branch: tuple[sql.Composable, list[Any]]) -> list[Any]:
        async with await AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            return await crm_search.search(
                conn, ADMIN, f"Ivo Branch{tag}", ["contacts"], 5, [branch]
            )

    hits = asyncio.run(go(extra))
    assert {(h.type, h.id) for h in hits} == {("contacts", made), ("devices", f"dev-{tag}")}
    monkeypatch.setattr(crm_search, "TIMEOUT_MS", 50)
    slow = (
        sql.SQL(
            "(SELECT 'devices'::text, 'x'::text, 'x'::text, ''::text, 0.0::float8"
            " FROM pg_sleep(%s))"
        ),
        [2],
    )
    with pytest.raises(Unavailable):
        asyncio.run(go(slow))
