"""The customer-facing chat bot on the public web chat: engage's chat responder.

engage stores each visitor message in its conversation and hands it to `respond` (the
`CHAT_RESPONDER` hook, installed by assistant.routes). The bot runs the dialogue of
assistant.bot in the message's own transaction, with the conversation's session row
locked (two sockets of one visitor take turns), and answers through the conversation like
an agent: `engage.conversations.add_message` (no author), which the widget's socket
delivers. While the bot handles a conversation it waits on the visitor (pending); a
handover puts it in the agents' open queue (assigned to the bot's handover user when one
is set) with a note that says why and carries what was gathered and the transcript; from
then on the bot stays silent in that conversation.

Untrusted input: the bot reads the first 500 characters of a message; it answers at most
`PER_VISITOR_PER_MIN` messages a minute and `PER_VISITOR_PER_DAY` a day per visitor (a
sliding log in the database, shared by every API worker), and `MAX_BOT_TURNS` in one
conversation before it hands over; past the per-minute limit it stays silent (the message
is in the inbox all the same). What it may say is only the public knowledge base articles,
the free times of the booking users, and what the visitor told it: it reads no other CRM
record, and writes only the lead, its qualification note and the meeting.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from assistant import bot, kb
from calendars import busy, meetings
from calendars.booking_routes import search_slots
from calendars.meetings import MeetingConflict
from crm.entities import ACTIVITIES, LEADS
from crm.store import create_record
from engage import conversations
from engage.channel_routes import ChatTurn
from identity.auth import load_principal
from kernel.errors import ApiError, NotFound
from kernel.principal import Principal
from kernel.web import DB_POOL

log = logging.getLogger(__name__)

Conn = AsyncConnection[Any]
BOT_ACTOR_ID = 0  # the audit trail's actor for what the bot writes (as engage's)
PER_VISITOR_PER_MIN = 12
PER_VISITOR_PER_DAY = 200
ALL_PER_MIN = 600
MAX_BOT_TURNS = 40
LEAD_TIME = timedelta(hours=2)
SLOTS_OFFERED = 3


def bot_principal() -> Principal:
    return Principal(
        user_id=BOT_ACTOR_ID,
        email="system:assistant-bot",
        role="admin",
        territory_id=None,
        team_user_ids=(),
        team_territory_ids=(),
    )


@dataclass(frozen=True, slots=True)
class BotSettings:
    enabled: bool
    lead_owner_id: int | None
    booking_user_ids: list[int]
    meeting_minutes: int
    window_days: int
    handoff_user_id: int | None
    min_score: float
    name: str  # what the bot signs its replies with (the widget marks it as the assistant)
    updated_at: datetime


async def read_settings(conn: Conn) -> BotSettings:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT enabled, lead_owner_id, booking_user_ids, meeting_minutes, window_days,"
        " handoff_user_id, min_score, name, updated_at FROM assistant_bot_settings WHERE id = 1"
    )
    row = await cur.fetchone()
    assert row is not None
    return BotSettings(**{**row, "min_score": round(float(row["min_score"]), 4)})


async def write_settings(conn: Conn, user_id: int, values: dict[str, Any]) -> BotSettings:
    for col in ("lead_owner_id", "handoff_user_id"):
        if values.get(col) is not None:
            await _active_user(conn, values[col], col)
    for uid in values.get("booking_user_ids") or []:
        await _active_user(conn, uid, "booking_user_ids")
    await conn.execute(
        "UPDATE assistant_bot_settings SET enabled = %(enabled)s,"
        " lead_owner_id = %(lead_owner_id)s, booking_user_ids = %(booking_user_ids)s,"
        " meeting_minutes = %(meeting_minutes)s, window_days = %(window_days)s,"
        " handoff_user_id = %(handoff_user_id)s, min_score = %(min_score)s,"
        " name = %(name)s, updated_by = %(by)s, updated_at = now() WHERE id = 1",
        {**values, "name": " ".join(str(values["name"]).split()), "by": user_id},
    )
    return await read_settings(conn)


async def _active_user(conn: Conn, user_id: int, field: str) -> None:
    cur = await conn.execute("SELECT 1 FROM users WHERE id = %s AND active", (user_id,))
    if await cur.fetchone() is None:
        raise ApiError(f"no active user {user_id}", field=field)


# --------------------------------------------------------------------------- limits


async def take(conn: Conn, key: str, limit: int, window_s: int) -> bool:
    """One more use of `key` unless it had `limit` in the last `window_s` (a sliding log
    shared by every API worker); False when over the limit."""
    key = key[:200]
    cur = await conn.execute(
        "SELECT count(*) FROM assistant_bot_rates"
        " WHERE key = %s AND at > now() - make_interval(secs => %s)",
        (key, window_s),
    )
    row = await cur.fetchone()
    if row is not None and int(row[0]) >= limit:
        return False
    await conn.execute("INSERT INTO assistant_bot_rates (key, at) VALUES (%s, now())", (key,))
    if random.random() < 0.01:
        await conn.execute("DELETE FROM assistant_bot_rates WHERE at < now() - interval '2 days'")
    return True


# --------------------------------------------------------------------------- sessions


async def _session(conn: Conn, turn: ChatTurn) -> dict[str, Any]:
    await conn.execute(
        "INSERT INTO assistant_bot_sessions (conversation_id, visitor) VALUES (%s, %s)"
        " ON CONFLICT (conversation_id) DO NOTHING",
        (turn.conversation_id, turn.visitor_key),
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM assistant_bot_sessions WHERE conversation_id = %s FOR UPDATE",
        (turn.conversation_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


def _state(row: dict[str, Any]) -> bot.State:
    return bot.State(
        stage=row["stage"],
        answers={str(k): str(v) for k, v in (row["answers"] or {}).items()},
        offered=tuple(str(x) for x in (row["offered"] or [])),
        misses=int(row["misses"]),
        lead_id=row["lead_id"],
        meeting_id=row["meeting_id"],
    )


# --------------------------------------------------------------------------- the hook


async def respond(app: web.Application, turn: ChatTurn) -> None:
    """engage's chat responder: answer one stored visitor message (or stay silent)."""
    started = time.perf_counter()
    async with app[DB_POOL].connection() as conn:
        cfg = await read_settings(conn)
        if not cfg.enabled:
            return
        row = await _session(conn, turn)
        state = _state(row)
        if state.stage == "handed_over":
            await _count(conn, turn, row, replies=0)
            return
        if not (
            await take(conn, f"visitor:{turn.visitor_key}", PER_VISITOR_PER_MIN, 60)
            and await take(conn, "all", ALL_PER_MIN, 60)
        ):
            await _count(conn, turn, row, replies=0)
            await _log(conn, turn, "rate_limited", "silent", 0.0, started)
            return
        if (
            not await take(conn, f"visitor-day:{turn.visitor_key}", PER_VISITOR_PER_DAY, 86400)
            or row["bot_replies"] >= MAX_BOT_TURNS
        ):
            step = bot.Step("handoff", (), state, do="handoff", reason="limit")
        else:
            step = bot.start(turn.text, state, turn.email)
        replies, intent, outcome, confidence = await _run(conn, cfg, turn, step)
        await _count(conn, turn, row, replies=len(replies))
        for i, text in enumerate(replies):
            await conversations.add_message(
                conn,
                conversation_id=turn.conversation_id,
                channel="chat",
                direction="out",
                body_text=text[:4000],
                from_addr=cfg.name,  # the widget shows it as the assistant's name
                external_id=f"bot:{turn.message_id}:{i}",
            )
        if outcome != "handoff" and replies:
            await conversations.set_handling(conn, turn.conversation_id, waiting_on_us=False)
        await _log(conn, turn, intent, outcome, confidence, started)


async def _count(conn: Conn, turn: ChatTurn, row: dict[str, Any], replies: int) -> None:
    await conn.execute(
        "UPDATE assistant_bot_sessions SET visitor_turns = visitor_turns + 1,"
        " bot_replies = bot_replies + %s, updated_at = now() WHERE conversation_id = %s",
        (replies, turn.conversation_id),
    )


async def _log(
    conn: Conn, turn: ChatTurn, intent: str, outcome: str, confidence: float, started: float
) -> None:
    await conn.execute(
        "INSERT INTO assistant_messages (user_id, conversation_id, channel, intent, decided_by,"
        " confidence, outcome, latency_ms) VALUES (NULL, %s, 'web_chat', %s, 'bot', %s, %s, %s)",
        (
            turn.conversation_id,
            intent,
            confidence,
            outcome,
            (time.perf_counter() - started) * 1000,
        ),
    )


_OUTCOME = {
    "kb_answer": "answered",
    "greeting": "answered",
    "thanks": "answered",
    "qualify": "asked",
    "lead_created": "done",
    "offer_slots": "answered",
    "booked": "done",
    "no_booking": "answered",
    "no_slots": "answered",
    "lead_refused": "refused",
    "slot_taken": "refused",
}


async def _run(
    conn: Conn, cfg: BotSettings, turn: ChatTurn, step: bot.Step
) -> tuple[list[str], str, str, float]:
    """Carry out the step's chain; (replies, the turn's intent, outcome, confidence)."""
    replies: list[str] = []
    intent = ""
    confidence = step.confidence
    for _ in range(6):  # each step names at most one follow-up; a chain is short
        replies.extend(step.replies)
        if step.intent not in ("question", "handoff", "lead", "book") and not intent:
            intent = step.intent
            confidence = step.confidence
        state = step.state
        if step.do == "search":
            hits = await kb.search(conn, turn.text[: bot.MAX_TEXT], None, limit=1)
            best = (
                bot.Article(h.id, h.title, h.snippet, h.score, f"/help/articles/{h.id}")
                if (h := (hits[0] if hits else None))
                else None
            )
            step = bot.after_search(turn.text, state, best, cfg.min_score)
        elif step.do == "lead":
            lead_id = await _make_lead(conn, cfg, turn, state)
            if lead_id is not None:  # the chat is the lead's: on its record and in the inbox
                await conversations.link_lead(conn, turn.conversation_id, lead_id)
            step = bot.after_lead(state, lead_id)
        elif step.do == "slots":
            slots, zone, theirs = await _slots(conn, cfg, turn.tz)
            step = bot.after_slots(state, slots, zone, theirs)
        elif step.do == "book":
            label, meeting_id = await _book(conn, cfg, turn, state, step.pick)
            step = bot.after_booking(state, label, meeting_id)
        elif step.do == "handoff":
            intent = intent or "handoff"
            await _hand_over(conn, cfg, turn, state, step.reason, replies)
            return [*replies, bot.handoff_reply(step.reason)], intent, "handoff", confidence
        else:
            await _save(conn, turn, state)
            return replies, intent or step.intent, _OUTCOME.get(intent, "answered"), confidence
    raise AssertionError("the bot's steps did not settle")  # pragma: no cover


async def _save(conn: Conn, turn: ChatTurn, state: bot.State) -> None:
    await conn.execute(
        "UPDATE assistant_bot_sessions SET stage = %s, answers = %s, offered = %s, misses = %s,"
        " lead_id = %s, meeting_id = %s WHERE conversation_id = %s",
        (
            state.stage,
            Jsonb(state.answers),
            Jsonb(list(state.offered)),
            state.misses,
            state.lead_id,
            state.meeting_id,
            turn.conversation_id,
        ),
    )


async def _hand_over(
    conn: Conn,
    cfg: BotSettings,
    turn: ChatTurn,
    state: bot.State,
    reason: str,
    pending: list[str],
) -> None:
    await _save(conn, turn, replace(state, stage="handed_over"))
    await conn.execute(
        "UPDATE assistant_bot_sessions SET handoff_reason = %s, handed_over_at = now()"
        " WHERE conversation_id = %s",
        (reason, turn.conversation_id),
    )
    transcript = [
        (
            "Visitor"
            if m["direction"] == "in"
            else "Bot"
            if m["author_user_id"] is None
            else "Agent",
            str(m["body_text"]),
        )
        for m in await conversations.messages(conn, turn.conversation_id)
        if m["direction"] in ("in", "out")
    ]
    transcript += [("Bot", r) for r in pending]
    await conversations.set_handling(
        conn, turn.conversation_id, assignee_user_id=cfg.handoff_user_id, waiting_on_us=True
    )
    await conversations.add_message(
        conn,
        conversation_id=turn.conversation_id,
        channel="note",
        direction="note",
        body_text=bot.summary(state, reason, transcript)[:20_000],
        external_id=f"bot-handoff:{turn.conversation_id}",
    )


async def _make_lead(conn: Conn, cfg: BotSettings, turn: ChatTurn, state: bot.State) -> int | None:
    a = state.answers
    email = (a.get("email") or turn.email or "").lower()
    # one lead per address: a visitor who comes back is not a second lead
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('assistant-lead:' || %s))", (email,))
    cur = await conn.execute(
        "SELECT id FROM leads WHERE lower(email) = %s AND status <> 'converted' ORDER BY id LIMIT 1",
        (email,),
    )
    got = await cur.fetchone()
    names = a.get("name", "").split()
    values: dict[str, Any] = {
        "first_name": " ".join(names[:-1])[:200] or None,
        "last_name": (names[-1] if names else email.split("@")[0])[:200],
        "email": email[:320],
        "company": (a.get("company") or "")[:300] or None,
        "source": "website",
        "status": "new",
        "owner_id": cfg.lead_owner_id,
    }
    if cfg.lead_owner_id is not None:
        t = await (
            await conn.execute("SELECT territory_id FROM users WHERE id = %s", (cfg.lead_owner_id,))
        ).fetchone()
        values["territory_id"] = t[0] if t else None
    else:
        values["territory_id"] = None
    try:
        async with conn.transaction():
            if got is not None:
                lead_id = int(got[0])
            else:
                lead_id = int((await create_record(conn, LEADS, bot_principal(), values))["id"])
            body = (
                "\n".join(f"{k}: {v}" for k, v in a.items() if not k.startswith("_") and v)
                + f"\n\nWeb chat conversation {turn.conversation_id} (/engage/inbox/)"
            )
            await create_record(
                conn,
                ACTIVITIES,
                bot_principal(),
                {
                    "type": "note",
                    "subject": "Qualified on the website chat",
                    "body": body[:20_000],
                    "lead_id": lead_id,
                    "owner_id": cfg.lead_owner_id,
                    "territory_id": values["territory_id"],
                },
            )
    except ApiError as exc:
        log.warning("assistant bot: the CRM refused the lead of %s: %s", email, exc.message)
        return None
    return lead_id


def _label(start: datetime, tz: str) -> str:
    local = start.astimezone(ZoneInfo(tz))
    return f"{local:%a %d %b, %H:%M} ({tz})"


async def _zone(conn: Conn, user_id: int, start: datetime) -> str:
    people = await busy.attendees(conn, [user_id], start, start + timedelta(days=1))
    return people[0].tz if people else "UTC"


async def _slots(
    conn: Conn, cfg: BotSettings, visitor_tz: str | None
) -> tuple[list[tuple[str, str]], str, bool]:
    """The next free times of the booking users, said in the visitor's zone (the widget's,
    checked by engage) or else the first free rep's: ([(ISO start in that zone, label)],
    the zone, whether it is the visitor's)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now + LEAD_TIME
    end = now + timedelta(days=cfg.window_days)
    duration = timedelta(minutes=cfg.meeting_minutes)
    starts: set[datetime] = set()
    zone = visitor_tz
    for uid in cfg.booking_user_ids:
        try:
            found = await search_slots(
                conn, [uid], [], start, end, duration, mode="earliest", limit=SLOTS_OFFERED,
                now=start,
            )  # fmt: skip
        except NotFound:  # deactivated since
            continue
        if found:
            zone = zone or await _zone(conn, uid, start)
            starts.update(s.start for s in found)
    tz = zone or "UTC"
    slots = [
        (k.astimezone(ZoneInfo(tz)).isoformat(), _label(k, tz))
        for k in sorted(starts)[:SLOTS_OFFERED]
    ]
    return slots, tz, visitor_tz is not None


async def _book(
    conn: Conn, cfg: BotSettings, turn: ChatTurn, state: bot.State, pick: str
) -> tuple[str | None, int | None]:
    """The meeting at the picked time with the first booking user still free then (checked
    again under the rep's lock, as the booking page does)."""
    start = datetime.fromisoformat(pick).astimezone(UTC)
    duration = timedelta(minutes=cfg.meeting_minutes)
    end = start + duration
    if start < datetime.now(UTC):
        return None, None
    a = state.answers
    name = a.get("name") or "website visitor"
    email = a.get("email") or turn.email or ""
    details = (
        f"Booked on the website chat by {name} <{email}>\n"
        + "\n".join(f"{k}: {v}" for k, v in a.items() if not k.startswith("_") and v)
        + (f"\nLead: /console/#/r/leads/{state.lead_id}" if state.lead_id else "")
    )
    for uid in cfg.booking_user_ids:
        try:
            async with conn.transaction():
                await meetings.lock_user(conn, uid)
                found = await search_slots(
                    conn, [uid], [], start, end, duration, step=timedelta(minutes=1),
                    mode="earliest", limit=1, now=start,
                )  # fmt: skip
                if not found or found[0].start != start:
                    continue
                rep = await load_principal(conn, uid)
                if rep is None:
                    continue
                act, _ = await meetings.create_meeting(
                    conn,
                    rep,
                    subject=f"Web chat: {name}"[:200],
                    start=start,
                    end=end,
                    tz="UTC",
                    owner_id=uid,
                    body=details[:20_000],
                    reminder_min=15,
                    source="assistant_bot",
                    source_ref=f"{turn.conversation_id}:{int(start.timestamp())}",
                )
                zone = turn.tz or await _zone(conn, uid, start)
                return _label(start, zone), int(act["id"])
        except (MeetingConflict, NotFound):
            continue
        except ApiError as exc:
            log.warning("assistant bot: booking with user %s refused: %s", uid, exc.message)
            continue
    return None, None
