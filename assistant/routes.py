"""The assistant over HTTP: one endpoint that third-party voice or chat platforms can call.

    POST /api/v1/assistant/messages   text in; intent, slots, answer, actions, links out
    POST /api/v1/assistant/voice      WAV in (push-to-talk); transcript and the same answer out
    POST /api/v1/assistant/speech     text in; the answer read aloud (WAV) out
    GET  /api/v1/assistant/actions    the audit of the assistant's writes for the caller
    POST /api/v1/assistant/actions/{action_id}/undo   undo one of them (through the store)

(The knowledge base's endpoints are in assistant.kb_routes; the customer bot's settings and
the analytics in assistant.bot_routes; `setup` mounts all three and starts the speech
worker process of assistant.asr_worker.)

Token-authenticated like every API endpoint; what it reads goes through the CRM store's
access clause, so the assistant never shows what the caller may not see. Writes are
answered with what would be done and `needs_confirmation`; sent again with
`confirm: true`, the write is carried out through the CRM store as the caller, audited and
undoable (assistant.writes). A question that is no command the assistant understood for
sure is answered from the knowledge base when an article the caller may read answers it
well enough, citing it (intent `knowledge_question`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from aiohttp import web

from assistant import bot_routes, commands, kb, kb_routes, voice, workflows, writes
from assistant.act import WRITES, Answer, act, visible_names
from assistant.asr_worker import RecognitionWorker
from assistant.classifier import default_model
from assistant.dialogue import understand_in_context
from assistant.understand import Understanding
from kernel.errors import ApiError, Unprocessable
from kernel.http import Access, RawBody, Req, Routes
from kernel.principal import Principal
from kernel.web import SETTINGS

log = logging.getLogger(__name__)
routes = Routes("assistant", "Plain-language commands: understanding and answers")
ASR = web.AppKey("assistant_asr", RecognitionWorker)


ContextValue = Annotated[str, msgspec.Meta(max_length=300)] | int | float


class AssistantContext(msgspec.Struct, frozen=True):
    """The previous answer's `context`, sent back for follow-ups and pronouns."""

    intent: Annotated[str, msgspec.Meta(max_length=40)]
    slots: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=40)], ContextValue], msgspec.Meta(max_length=20)
    ] = {}


OnScreenDevice = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        description="the device the user is looking at (its alerts or telemetry): "
        "\u201cescalate this alert\u201d means its newest open alert",
    ),
]


class Message(msgspec.Struct, frozen=True):
    text: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=1000, description="the command, typed or transcribed"
        ),
    ]
    tz: Annotated[str, msgspec.Meta(max_length=64, description="IANA time zone of the user")] = (
        "UTC"
    )
    confirm: Annotated[bool, msgspec.Meta(description="carry out the write the text asks for")] = (
        False
    )
    now: (
        Annotated[
            dt.datetime,
            msgspec.Meta(
                description="the user's local wall-clock time, no offset; default: now in tz"
            ),
        ]
        | None
    ) = None
    context: AssistantContext | None = None
    device_id: OnScreenDevice | None = None


class Reply(msgspec.Struct, frozen=True):
    intent: str
    confidence: float
    slots: dict[str, Any]
    answer: str
    actions: list[dict[str, Any]]
    links: list[str]
    needs_confirmation: bool
    context: AssistantContext | None = None


@routes.post(
    "/api/v1/assistant/messages",
    access=Access.read(unscoped="every read goes through the CRM store's access clause"),
    summary="Understand one command and answer it",
)
async def post_message(req: Req, body: Message) -> Reply:
    return await _answer(
        req, body.text, body.tz, body.now, body.confirm, context=body.context, device=body.device_id
    )


def _local_now(tz: str, now: dt.datetime | None) -> tuple[ZoneInfo, dt.datetime]:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(f"unknown time zone {tz!r}", field="tz") from exc
    if now is not None and now.tzinfo is not None:
        raise ApiError("now is local wall-clock time, without an offset", field="now")
    return zone, now or dt.datetime.now(zone).replace(tzinfo=None, microsecond=0)


async def _answer(
    req: Req,
    text: str,
    tz: str,
    now: dt.datetime | None,
    confirm: bool,
    channel: str = "text",
    context: AssistantContext | None = None,
    device: str | None = None,
) -> Reply:
    started = time.perf_counter()
    zone, local = _local_now(tz, now)
    # loaded or fitted off the event loop (at once when the start-up warm-up has run)
    model = await asyncio.to_thread(default_model, req.settings.state_dir / "cache")
    prev = {"intent": context.intent, "slots": dict(context.slots)} if context else None
    u = understand_in_context(text, local, prev, fallback=model)
    command: str | None = None
    async with req.connection() as conn:
        flow = await _workflow(
            req, conn, text, u, local.replace(tzinfo=zone), confirm, channel, context, device
        )
        if flow is not None:
            u, answer = flow
            command = str(u.slots["command"])
        elif replied := await _reply_to_write(conn, req.user, text, local, zone, context, channel):
            u, answer = replied
        elif (cited := await _from_knowledge(conn, req.user, u, text)) is not None:
            u, answer = cited
        else:
            answer = await act(
                conn, req.user, u, local.replace(tzinfo=zone), confirm, text=text, channel=channel
            )
        result = writes.outcome(u.intent, answer.actions, answer.needs_confirmation)
        await writes.log_message(
            conn, req.user, channel, u.intent, u.by, u.confidence, result,
            (time.perf_counter() - started) * 1000, command,
        )  # fmt: skip
    return Reply(
        u.intent,
        round(u.confidence, 3),
        u.slots,
        answer.text,
        answer.actions,
        answer.links,
        answer.needs_confirmation,
        AssistantContext(
            u.intent,
            {
                k: v[:300] if isinstance(v, str) else v
                for k, v in u.slots.items()
                if isinstance(v, str | int | float)
            }
            # a write waiting for its yes: a spoken or typed "yes" carries it out
            | ({"pending": 1} if answer.needs_confirmation else {}),
        )
        if u.intent != "out_of_scope"
        else context,
    )


async def _reply_to_write(
    conn: Any,
    principal: Principal,
    text: str,
    local: dt.datetime,
    zone: ZoneInfo,
    context: AssistantContext | None,
    channel: str,
) -> tuple[Understanding, Answer] | None:
    """A yes or no to the write the previous answer asked about (its context is pending):
    yes carries it out as understood then, no cancels it; None for anything else."""
    if context is None or not context.slots.get("pending") or context.intent not in WRITES:
        return None
    yes = commands.reply_to_question(text)
    if yes is None:
        return None
    slots = {k: v for k, v in context.slots.items() if k != "pending"}
    u = Understanding(context.intent, slots, 1.0, "confirmation")
    if not yes:
        return u, Answer(
            "Cancelled; nothing was changed.",
            [{"type": context.intent, "slots": slots, "status": "cancelled"}],
        )
    answer = await act(
        conn, principal, u, local.replace(tzinfo=zone), True, text=text, channel=channel
    )
    return u, answer


async def _workflow(
    req: Req,
    conn: Any,
    text: str,
    u: Understanding,
    now: dt.datetime,
    confirm: bool,
    channel: str,
    context: AssistantContext | None,
    device: str | None,
) -> tuple[Understanding, Answer] | None:
    """A workflow command (assistant.commands) instead of the understanding `u`, when the
    text says one (`commands.choose`), or a yes / no to the question a command asked (the
    context says which); None otherwise, and `u` stands."""
    ctx = dict(context.slots) if context else {}
    if device and "alert_id" not in ctx:
        ctx["device_id"] = device
    known = await workflows.commands_for(conn, req.user)
    by_key = {c.key: c for c in known}
    pending = by_key.get(str(ctx.get("command"))) if ctx.get("pending") else None
    if context is not None and context.intent == commands.WORKFLOW_INTENT and pending:
        yes = commands.reply_to_question(text)
        if yes is False:
            slots = {"command": pending.key}
            return Understanding(commands.WORKFLOW_INTENT, slots, 1.0, "confirmation"), Answer(
                "Cancelled; nothing was changed.",
                [
                    {
                        "type": pending.key.split(":")[0],
                        "command": pending.key,
                        "status": "cancelled",
                    }
                ],
            )
        if yes:
            return await workflows.carry_out(
                conn, req.user, req.settings, pending, text=text, sentence="", now=now,
                confirm=True, context=ctx, confidence=1.0, by="confirmation", channel=channel,
            )  # fmt: skip
    match = commands.choose(u, commands.recognise(text, known))
    if match is None:
        return None
    u2, answer = await workflows.carry_out(
        conn, req.user, req.settings, match.command, text=text, sentence=match.sentence,
        now=now, confirm=confirm, context=ctx, confidence=match.confidence,
        by="template" if match.exact else "fuzzy", channel=channel,
    )  # fmt: skip
    if answer.needs_confirmation:
        u2.slots["pending"] = 1
    return u2, answer


KB_MIN_SCORE = 0.45
# a question about how things work, rather than a command about records
QUESTION = re.compile(
    r"^(?:how|what|why|where|when|which|who|can|could|should|is|are|does|do|will)\b.*"
    r"|.*\b(?:how (?:do|to|can|should)|what (?:does|is the|should))\b.*|.*\?$",
    re.I,
)


async def _from_knowledge(
    conn: Any, principal: Principal, u: Understanding, text: str
) -> tuple[Understanding, Answer] | None:
    """An answer from the knowledge base, cited, when the text is not a command the
    assistant understood for sure (out of scope, or a question only the model placed) and
    an article the caller may read answers it well enough."""
    if not (
        u.intent == "out_of_scope"
        or (QUESTION.match(text.strip()) and (u.by != "rule" or u.intent == "search_records"))
    ):
        return None
    hits = await kb.search(conn, text, principal, limit=3)
    if not hits or hits[0].score < KB_MIN_SCORE:
        return None
    best = hits[0]
    link = kb_routes.console_link(best.id)
    more = [h for h in hits[1:] if h.score >= KB_MIN_SCORE]
    also = (" See also: " + "; ".join(f"\u201c{h.title}\u201d" for h in more) + ".") if more else ""
    return (
        Understanding("knowledge_question", {"article_id": best.id}, best.score, "knowledge"),
        Answer(
            f"{best.snippet}\n\nSource: \u201c{best.title}\u201d ({link}).{also}",
            [
                {
                    "type": "knowledge",
                    "article_id": h.id,
                    "title": h.title,
                    "score": h.score,
                    "href": kb_routes.console_link(h.id),
                }
                for h in [best, *more]
            ],
            [link, *(kb_routes.console_link(h.id) for h in more)],
        ),
    )


class AssistantVoiceQuery(msgspec.Struct, frozen=True):
    context: (
        Annotated[
            str,
            msgspec.Meta(max_length=4000, description="the previous answer's context, as JSON"),
        ]
        | None
    ) = None
    tz: Annotated[str, msgspec.Meta(max_length=64, description="IANA time zone of the user")] = (
        "UTC"
    )
    confirm: Annotated[
        bool, msgspec.Meta(description="carry out the write the command asks for")
    ] = False
    now: (
        Annotated[
            dt.datetime,
            msgspec.Meta(description="the user's local wall-clock time, no offset; default: now"),
        ]
        | None
    ) = None
    device_id: OnScreenDevice | None = None


def _voice_context(raw: str | None) -> AssistantContext | None:
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw.encode(), type=AssistantContext)
    except msgspec.DecodeError as exc:
        raise ApiError(f"context: {exc}", field="context") from None


class AssistantVoiceReply(msgspec.Struct, frozen=True):
    transcript: str
    intent: str
    confidence: float
    slots: dict[str, Any]
    answer: str
    actions: list[dict[str, Any]]
    links: list[str]
    needs_confirmation: bool
    audio_seconds: float
    context: AssistantContext | None = None


@routes.post(
    "/api/v1/assistant/voice",
    access=Access.read(unscoped="every read goes through the CRM store's access clause"),
    summary="Understand one spoken command (push-to-talk audio) and answer it",
    description="The body is a WAV file: 16-bit PCM, mono or stereo, 8-48 kHz, "
    f"{voice.MIN_SECONDS}-{voice.MAX_SECONDS:.0f} s, at most {voice.MAX_AUDIO_BYTES} bytes. "
    "Recognised offline (pocketsphinx) with a language model of the assistant's commands and "
    "the names the caller may see; the transcript then takes the same path as a typed message.",
    body=RawBody(
        ("audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream"),
        "The recording's bytes (WAV)",
    ),
    max_body_bytes=voice.MAX_AUDIO_BYTES,
    errors=(422,),
)
async def post_voice(req: Req, query: AssistantVoiceQuery, body: bytes) -> AssistantVoiceReply:
    _local_now(query.tz, query.now)  # bad tz/now/context refused before any decoding
    context = _voice_context(query.context)
    try:
        samples = await asyncio.to_thread(voice.read_wav, body)
    except voice.AudioError as exc:
        raise Unprocessable(str(exc), field="body") from None
    async with req.connection() as conn:
        names = await visible_names(conn, req.user, voice.MAX_NAMES)
        # the workflow commands the caller may say, and the yes / no of their questions
        known = await workflows.commands_for(conn, req.user)
    phrases = commands.sentences(known) + commands.YES_NO_SENTENCES
    transcript = await req.app[ASR].transcribe(names, samples, (), phrases)
    seconds = round(len(samples) / voice.RATE, 2)
    if not transcript:
        return AssistantVoiceReply(
            "",
            "out_of_scope",
            0.0,
            {},
            "I did not catch that; please say it again.",
            [],
            [],
            False,
            seconds,
        )
    r = await _answer(
        req, transcript, query.tz, query.now, query.confirm, "voice", context, query.device_id
    )
    return AssistantVoiceReply(
        transcript,
        r.intent,
        r.confidence,
        r.slots,
        r.answer,
        r.actions,
        r.links,
        r.needs_confirmation,
        seconds,
        r.context,
    )


class AssistantSpeechIn(msgspec.Struct, frozen=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=600, description="what to say")]


@routes.post(
    "/api/v1/assistant/speech",
    access=Access.read(unscoped="reads no record: it reads the given text aloud"),
    summary="Read an answer aloud (offline text to speech, WAV)",
    content_type="audio/wav",
    errors=(422,),
)
async def post_speech(req: Req, body: AssistantSpeechIn) -> web.StreamResponse:
    try:
        data = await asyncio.to_thread(voice.speak, body.text)
    except voice.AudioError as exc:
        raise Unprocessable(str(exc), field="text") from None
    return web.Response(body=data, content_type="audio/wav")


class AssistantActionsQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class AssistantAction(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    at: dt.datetime
    channel: str
    text: str
    intent: str
    slots: dict[str, Any]
    status: str
    message: str
    entity: str | None
    record_id: int | None
    undoable: bool
    undone_at: dt.datetime | None


class AssistantActionList(msgspec.Struct, frozen=True):
    items: list[AssistantAction]


@routes.get(
    "/api/v1/assistant/actions",
    access=Access.read(unscoped="the caller's own actions (an admin: everyone's)"),
    summary="The audit of the assistant's writes: who, when, typed or spoken, what, result",
)
async def list_actions(req: Req, query: AssistantActionsQuery) -> AssistantActionList:
    async with req.connection() as conn:
        rows = await writes.actions(conn, req.user, query.limit)
    return AssistantActionList([msgspec.convert(r, AssistantAction) for r in rows])


class AssistantActionPath(msgspec.Struct, frozen=True):
    action_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class AssistantUndone(msgspec.Struct, frozen=True):
    id: int
    undone: bool
    entity: str
    record_id: int


@routes.post(
    "/api/v1/assistant/actions/{action_id}/undo",
    access=Access.write(unscoped="the caller's own action, undone through the CRM store's checks"),
    summary="Undo a write the assistant carried out (delete what it created, restore a change)",
    errors=(404, 409),
)
async def undo_action(req: Req, path: AssistantActionPath) -> AssistantUndone:
    async with req.connection() as conn, conn.transaction():
        out = await writes.undo(conn, req.user, path.action_id)
    return msgspec.convert(out, AssistantUndone)


async def _warm(app: web.Application) -> None:
    # Train the fallback model in the background so the first message does not wait for it.
    cache = app[SETTINGS].state_dir / "cache"
    asyncio.get_running_loop().run_in_executor(None, default_model, cache)


def _warmed(f: asyncio.Future[int]) -> None:
    if not f.cancelled() and f.exception() is not None:
        log.warning("assistant: the speech worker did not warm up: %s", f.exception())


async def _asr_ctx(app: web.Application) -> AsyncIterator[None]:
    """The speech worker process: started (and its command decoder built) in the
    background at start-up so the first spoken command finds it warm; stopped at the end."""
    worker = RecognitionWorker()
    app[ASR] = worker
    warming = asyncio.get_running_loop().run_in_executor(None, worker.warm)
    warming.add_done_callback(_warmed)
    yield
    await asyncio.to_thread(worker.close)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_asr_ctx)
    routes.mount(app)
    kb_routes.setup(app)
    bot_routes.setup(app)
    app.on_startup.append(_warm)
