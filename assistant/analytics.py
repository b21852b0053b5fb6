"""The assistant's analytics: what users and website visitors asked, and how it went.

- Per intent, workflow command (`command`: start_route, escalate_alert, automation:<id>;
  null for the fourteen intents) and channel (typed, spoken, web chat): volume, success (answered or done),
  fallback (decided by the trained model or not understood, the bot's low-confidence
  answers), handoff (to a person), confirmation, refusal, voice share, p95 latency.
- Users' conversations: runs of one user's messages less than 10 minutes apart; their
  average number of turns.
- The customer bot, per chat conversation it answered: contained (never handed over) over
  all, handoffs by reason, the visitor's average turns, leads made and meetings booked.

Users' figures cover the users the caller may see (an admin or viewer: everyone, with the
bot's turns; a manager: their team; others: themselves).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from assistant.commands import AUTOMATION, BUILT_IN_NAMES
from automation.service import workflow_names
from kernel.principal import Principal

Conn = AsyncConnection[Any]
Row = dict[str, Any]


async def assistant(conn: Conn, principal: Principal, days: int) -> Row:
    who = sql.SQL("TRUE") if principal.sees_everything else sql.SQL("m.user_id = ANY(%s)")
    params: list[Any] = [] if principal.sees_everything else [list(principal.team_user_ids)]
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL(
            """
            SELECT m.intent, m.command, m.channel, count(*) AS volume,
                   avg((m.outcome IN ('answered', 'done'))::int)::float AS success_rate,
                   avg((m.decided_by LIKE 'model%%' OR m.outcome = 'out_of_scope'
                        OR m.intent = 'fallback')::int)::float AS fallback_rate,
                   avg((m.outcome = 'handoff')::int)::float AS handoff_rate,
                   avg((m.outcome = 'confirm')::int)::float AS confirmation_rate,
                   avg((m.outcome = 'refused')::int)::float AS refusal_rate,
                   avg((m.channel = 'voice')::int)::float AS voice_share,
                   coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY m.latency_ms), 0)::float
                       AS p95_ms
            FROM assistant_messages m
            WHERE m.at > now() - make_interval(days => %s) AND {}
            GROUP BY m.intent, m.command, m.channel
            ORDER BY volume DESC, m.intent, m.command NULLS FIRST, m.channel
            """
        ).format(who),
        [days, *params],
    )
    intents = [
        {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
        for r in await cur.fetchall()
    ]
    await _name_commands(conn, intents)
    await cur.execute(
        sql.SQL(
            """
            SELECT count(*) AS conversations, coalesce(avg(n), 0)::float AS average_turns FROM (
              SELECT b.user_id, b.conv, count(*) AS n FROM (
                SELECT a.user_id, sum(a.starts) OVER (PARTITION BY a.user_id ORDER BY a.at, a.id)
                       AS conv
                FROM (
                  SELECT m.user_id, m.at, m.id,
                         CASE WHEN m.at - lag(m.at) OVER (PARTITION BY m.user_id ORDER BY m.at, m.id)
                                   < interval '10 minutes' THEN 0 ELSE 1 END AS starts
                  FROM assistant_messages m
                  WHERE m.user_id IS NOT NULL AND m.at > now() - make_interval(days => %s)
                    AND {}
                ) a
              ) b GROUP BY b.user_id, b.conv
            ) c
            """
        ).format(who),
        [days, *params],
    )
    conv = await cur.fetchone()
    assert conv is not None
    return {"intents": intents, **conv}


async def _name_commands(conn: Conn, rows: list[Row]) -> None:
    """`command_name`: what a person calls the command (a workflow's current name)."""
    ids = [
        int(c.removeprefix(AUTOMATION))
        for r in rows
        if isinstance(c := r.get("command"), str) and c.startswith(AUTOMATION)
    ]
    names = await workflow_names(conn, ids) if ids else {}
    for r in rows:
        c = r.get("command")
        if not isinstance(c, str):
            r["command_name"] = None
        elif c.startswith(AUTOMATION):
            r["command_name"] = names.get(int(c.removeprefix(AUTOMATION)), "a deleted workflow")
        else:
            r["command_name"] = BUILT_IN_NAMES.get(c, c.replace("_", " "))


async def bot(conn: Conn, days: int) -> Row:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT count(*) AS conversations,
               count(*) FILTER (WHERE s.handed_over_at IS NULL) AS contained,
               count(*) FILTER (WHERE s.handed_over_at IS NOT NULL) AS handed_over,
               coalesce(avg(s.visitor_turns), 0)::float AS average_turns,
               count(s.lead_id) AS leads,
               count(s.meeting_id) AS bookings,
               count(*) FILTER (WHERE s.handoff_reason = 'asked') AS asked,
               count(*) FILTER (WHERE s.handoff_reason = 'low_confidence') AS low_confidence,
               count(*) FILTER (WHERE s.handoff_reason = 'negative') AS negative,
               count(*) FILTER (WHERE s.handoff_reason = 'limit') AS limit_reached
        FROM assistant_bot_sessions s
        WHERE s.bot_replies > 0 AND s.started_at > now() - make_interval(days => %s)
        """,
        (days,),
    )
    r = await cur.fetchone()
    assert r is not None
    n = int(r["conversations"])
    return {
        "conversations": n,
        "contained": int(r["contained"]),
        "containment_rate": round(int(r["contained"]) / n, 4) if n else 0.0,
        "handed_over": int(r["handed_over"]),
        "handoff_rate": round(int(r["handed_over"]) / n, 4) if n else 0.0,
        "handoffs_by_reason": {
            "asked": int(r["asked"]),
            "low_confidence": int(r["low_confidence"]),
            "negative": int(r["negative"]),
            "limit": int(r["limit_reached"]),
        },
        "average_turns": round(float(r["average_turns"]), 2),
        "leads": int(r["leads"]),
        "bookings": int(r["bookings"]),
    }
