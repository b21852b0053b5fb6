"""crm: global search at a million records: a word index per record type and one lexicon.

c1001 indexed each record's whole text with trigrams; a typo-tolerant lookup then read the
posting lists of common trigrams ("  a", "sch") over every row (43 ms per type at 100k
contacts, ten times that at 1M). Here instead:

- `crm_search_words(text)`: the words of a text, lower-cased (`to_tsvector('simple')`
  lexemes, as an array). Each searchable type has a GIN index over the words of its names
  (`crm.search.DOCUMENTS`: change both together), so "every query word matches one of these
  words" is an index intersection.
- `search_words`: every distinct such word of every searchable type (tens of thousands, not
  millions), with a trigram index and a C-collated primary key. A query word is first
  expanded there to the words it may mean (itself, words it prefixes, words similar to it),
  which is where typo tolerance lives. Statement-level triggers keep it filled on insert and
  update (one INSERT ... SELECT DISTINCT per statement, so a bulk COPY pays once); words of
  deleted records stay, and only ever expand to nothing.
- E-mail prefix and phone-number suffix (digits only) btree indexes for contacts and leads.

Revision ID: c2001
Revises: c1003
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "c2001"
down_revision = "c1003"
branch_labels = None
depends_on = None

# table -> the expression of the names a person knows its records by (alias-free)
DOCS = {
    "accounts": "coalesce(name, '')",
    "contacts": "coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '"
    " || coalesce(company_name, '')",
    "leads": "coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' '"
    " || coalesce(company, '')",
    "opportunities": "coalesce(name, '')",
    "work_orders": "coalesce(title, '')",
}
OLD_TRGM = {
    "accounts_search_trgm": ("accounts", "(coalesce(name, ''))"),
    "contacts_search_trgm": (
        "contacts",
        "((coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' ||"
        " coalesce(company_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '')))",
    ),
    "leads_search_trgm": (
        "leads",
        "((coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' ||"
        " coalesce(company, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '')))",
    ),
    "opportunities_search_trgm": ("opportunities", "(coalesce(name, ''))"),
    "work_orders_search_trgm": ("work_orders", "(coalesce(title, ''))"),
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE FUNCTION crm_search_words(text) RETURNS text[] LANGUAGE sql IMMUTABLE"
        " PARALLEL SAFE RETURN tsvector_to_array(to_tsvector('simple'::regconfig, $1))"
    )
    op.execute('CREATE TABLE search_words (word text COLLATE "C" PRIMARY KEY)')
    op.execute("CREATE INDEX search_words_trgm ON search_words USING gin (word gin_trgm_ops)")
    op.execute(
        """
        CREATE FUNCTION crm_search_words_learn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format(
                'INSERT INTO search_words (word) SELECT DISTINCT w'
                ' FROM new_rows, unnest(crm_search_words(%s)) w'
                ' WHERE length(w) <= 100 ON CONFLICT DO NOTHING', TG_ARGV[0]);
            RETURN NULL;
        END $$
        """
    )
    for table, doc in DOCS.items():
        op.execute(
            f"CREATE INDEX {table}_search_words ON {table} USING gin (crm_search_words({doc}))"
        )
        arg = doc.replace("'", "''")
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_search_words_{event.lower()} AFTER {event} ON {table}"
                " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
                f" EXECUTE FUNCTION crm_search_words_learn('{arg}')"
            )
        op.execute(
            "INSERT INTO search_words (word) SELECT DISTINCT w"
            f" FROM {table}, unnest(crm_search_words({doc})) w"
            " WHERE length(w) <= 100 ON CONFLICT DO NOTHING"
        )
    for table in ("contacts", "leads"):
        op.execute(
            f"CREATE INDEX {table}_email_prefix ON {table} (lower(email) text_pattern_ops)"
            " WHERE email IS NOT NULL"
        )
        op.execute(
            f"CREATE INDEX {table}_phone_suffix ON {table}"
            " (reverse(regexp_replace(phone, '[^0-9]', '', 'g')) text_pattern_ops)"
            " WHERE phone IS NOT NULL"
        )
    for name in OLD_TRGM:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    # statistics of the new expression indexes, which the planner needs to prefer them
    for table in (*DOCS, "search_words"):
        op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    for name, (table, expr) in OLD_TRGM.items():
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({expr} gin_trgm_ops)")
    for table in ("contacts", "leads"):
        op.execute(f"DROP INDEX IF EXISTS {table}_email_prefix")
        op.execute(f"DROP INDEX IF EXISTS {table}_phone_suffix")
    for table in DOCS:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_search_words_{event} ON {table}")
        op.execute(f"DROP INDEX IF EXISTS {table}_search_words")
    op.execute("DROP FUNCTION IF EXISTS crm_search_words_learn()")
    op.execute("DROP TABLE IF EXISTS search_words")
    op.execute("DROP FUNCTION IF EXISTS crm_search_words(text)")
