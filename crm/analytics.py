"""Pipeline analytics over the opportunities a principal may see (SQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from crm.entities import OPPORTUNITIES
from crm.store import Row, scope
from kernel.principal import Principal

Conn = AsyncConnection[Any]


async def _rows(conn: Conn, query: sql.Composed, params: list[Any]) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    return await cur.fetchall()


async def stage_summary(conn: Conn, principal: Principal, pipeline_id: int) -> list[Row]:
    """Per stage: number of opportunities, total and probability-weighted amount, by currency."""
    acc, acc_p = scope(OPPORTUNITIES, principal, "o")
    return await _rows(
        conn,
        sql.SQL(
            """
            SELECT s.id AS stage_id, s.name AS stage, s.position, s.is_won, s.is_lost,
                   coalesce(o.currency, crm_default_currency()) AS currency,
                   count(o.id) AS count,
                   coalesce(sum(o.amount), 0) AS amount,
                   coalesce(sum(o.amount * o.probability / 100), 0)::numeric(18, 2) AS weighted_amount
            FROM pipeline_stages s
            LEFT JOIN opportunities o ON o.stage_id = s.id AND {acc}
            WHERE s.pipeline_id = %s
            GROUP BY s.id, s.name, s.position, s.is_won, s.is_lost, o.currency
            ORDER BY s.position, currency
            """
        ).format(acc=acc),
        [*acc_p, pipeline_id],
    )


async def conversion(
    conn: Conn, principal: Principal, pipeline_id: int, start: dt.datetime, end: dt.datetime
) -> list[Row]:
    """For each stage: of the opportunities that entered it during [start, end), how many
    later reached a later stage (any time up to now); rate = advanced / entered."""
    acc, acc_p = scope(OPPORTUNITIES, principal, "o")
    return await _rows(
        conn,
        sql.SQL(
            """
            WITH entered AS (
                SELECT h.opportunity_id, h.to_stage_id AS stage_id, min(h.changed_at) AS at
                FROM opportunity_stage_history h JOIN opportunities o ON o.id = h.opportunity_id
                WHERE o.pipeline_id = %s AND h.changed_at >= %s AND h.changed_at < %s AND {acc}
                GROUP BY h.opportunity_id, h.to_stage_id
            ), advanced AS (
                SELECT e.opportunity_id, e.stage_id FROM entered e
                JOIN pipeline_stages s ON s.id = e.stage_id
                WHERE EXISTS (
                    SELECT 1 FROM opportunity_stage_history h2
                    JOIN pipeline_stages s2 ON s2.id = h2.to_stage_id
                    WHERE h2.opportunity_id = e.opportunity_id AND h2.changed_at >= e.at
                      AND s2.position > s.position AND NOT s2.is_lost
                )
            )
            SELECT s.id AS stage_id, s.name AS stage, s.position,
                   (SELECT count(*) FROM entered e WHERE e.stage_id = s.id) AS entered,
                   (SELECT count(*) FROM advanced a WHERE a.stage_id = s.id) AS advanced
            FROM pipeline_stages s WHERE s.pipeline_id = %s AND NOT s.is_won AND NOT s.is_lost
            ORDER BY s.position
            """
        ).format(acc=acc),
        [pipeline_id, start, end, *acc_p, pipeline_id],
    )


async def forecast(
    conn: Conn,
    principal: Principal,
    pipeline_id: int | None,
    start: dt.date | None,
    end: dt.date | None,
) -> list[Row]:
    """By close month and currency: open amount, probability-weighted amount, won amount."""
    acc, acc_p = scope(OPPORTUNITIES, principal, "o")
    return await _rows(
        conn,
        sql.SQL(
            """
            SELECT to_char(date_trunc('month', o.close_date), 'YYYY-MM') AS month, o.currency,
                   count(*) FILTER (WHERE o.status = 'open') AS open_count,
                   coalesce(sum(o.amount) FILTER (WHERE o.status = 'open'), 0) AS open_amount,
                   coalesce(sum(o.amount * o.probability / 100) FILTER (WHERE o.status = 'open'), 0)::numeric(18, 2)
                       AS weighted_amount,
                   coalesce(sum(o.amount) FILTER (WHERE o.status = 'won'), 0) AS won_amount
            FROM opportunities o
            WHERE o.close_date IS NOT NULL AND o.status <> 'lost'
              AND (%s::bigint IS NULL OR o.pipeline_id = %s)
              AND (%s::date IS NULL OR o.close_date >= %s) AND (%s::date IS NULL OR o.close_date < %s)
              AND {acc}
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ).format(acc=acc),
        [pipeline_id, pipeline_id, start, start, end, end, *acc_p],
    )


async def owners(
    conn: Conn, principal: Principal, start: dt.datetime | None, end: dt.datetime | None
) -> list[Row]:
    """Per owner, over opportunities closed in [start, end): won, lost, win rate and the
    average cycle time (created to closed) in days."""
    acc, acc_p = scope(OPPORTUNITIES, principal, "o")
    return await _rows(
        conn,
        sql.SQL(
            """
            SELECT o.owner_id, u.name AS owner_name,
                   count(*) FILTER (WHERE o.status = 'won') AS won,
                   count(*) FILTER (WHERE o.status = 'lost') AS lost,
                   round(count(*) FILTER (WHERE o.status = 'won')::numeric / count(*), 4)::float8 AS win_rate,
                   round((avg(extract(epoch FROM o.closed_at - o.created_at)) / 86400)::numeric, 2)::float8
                       AS avg_cycle_days,
                   coalesce(sum(o.amount) FILTER (WHERE o.status = 'won'), 0) AS won_amount
            FROM opportunities o LEFT JOIN users u ON u.id = o.owner_id
            WHERE o.status IN ('won', 'lost') AND o.closed_at IS NOT NULL
              AND (%s::timestamptz IS NULL OR o.closed_at >= %s)
              AND (%s::timestamptz IS NULL OR o.closed_at < %s) AND {acc}
            GROUP BY o.owner_id, u.name ORDER BY o.owner_id NULLS LAST
            """
        ).format(acc=acc),
        [start, start, end, end, *acc_p],
    )
