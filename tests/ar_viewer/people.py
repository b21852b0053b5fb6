"""Users and API tokens made straight in the database (the token hashed by identity's own
function), for tests that talk to the app over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from identity.auth import new_token


def make_user(
    conn: psycopg.Connection[Any],
    role: str,
    territory_id: int | None = None,
    manager_id: int | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO users (email, name, role, territory_id, manager_id)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (
            f"{role}-{uuid.uuid4().hex[:8]}@example.test",
            role.title(),
            role,
            territory_id,
            manager_id,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def make_token(conn: psycopg.Connection[Any], user_id: int) -> tuple[int, str]:
    """(token id, token) of a fresh API token of the user."""
    token, prefix, digest = new_token()
    row = conn.execute(
        "INSERT INTO api_tokens (user_id, token_hash, prefix) VALUES (%s, %s, %s) RETURNING id",
        (user_id, digest, prefix),
    ).fetchone()
    assert row is not None
    return int(row[0]), token


def user_token(dsn: str, role: str, territory_id: int | None = None) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return make_token(conn, make_user(conn, role, territory_id))[1]
