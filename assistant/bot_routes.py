"""The customer bot's settings and the assistant's analytics, over HTTP.

    GET /api/v1/assistant/bot/settings    whether the bot answers the web chat, and how
    PUT /api/v1/assistant/bot/settings    change them (admins)
    GET /api/v1/assistant/analytics       per intent volume, success, fallback and handoff
                                          rates; average turns; the bot's containment

The bot itself is engage's chat responder (assistant.bot_service), installed here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from assistant import analytics, bot_service
from engage.channel_routes import CHAT_RESPONDER
from kernel.http import Access, Req, Routes

routes = Routes("assistant-bot", "The customer-facing web chat bot and the assistant's analytics")

UserId = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class BotSettingsIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: Annotated[bool, msgspec.Meta(description="the bot answers web chat visitors")]
    booking_user_ids: Annotated[
        list[UserId],
        msgspec.Meta(max_length=10, description="the reps whose free times the bot offers"),
    ] = []
    lead_owner_id: (
        Annotated[
            UserId, msgspec.Meta(description="owner of the leads the bot makes (none: unowned)")
        ]
        | None
    ) = None
    handoff_user_id: Annotated[
        UserId, msgspec.Meta(description="who a handed-over conversation is assigned to "
                             "(none: the unassigned queue)")
    ] | None = None  # fmt: skip
    meeting_minutes: Annotated[int, msgspec.Meta(ge=10, le=240)] = 30
    window_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 14
    min_score: Annotated[
        float,
        msgspec.Meta(
            ge=0, le=1, description="the knowledge base score below which the bot hands over"
        ),
    ] = 0.45
    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=40,
            pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
            description="the name the bot signs its web chat replies with (the widget shows "
            "it marked as the assistant)",
        ),
    ] = "Assistant"


class BotSettingsOut(msgspec.Struct, frozen=True):
    enabled: bool
    booking_user_ids: list[int]
    lead_owner_id: int | None
    handoff_user_id: int | None
    meeting_minutes: int
    window_days: int
    min_score: float
    name: str
    updated_at: datetime


def _out(s: bot_service.BotSettings) -> BotSettingsOut:
    return BotSettingsOut(
        s.enabled, list(s.booking_user_ids), s.lead_owner_id, s.handoff_user_id,
        s.meeting_minutes, s.window_days, s.min_score, s.name, s.updated_at,
    )  # fmt: skip


@routes.get(
    "/api/v1/assistant/bot/settings",
    access=Access.managers(unscoped="deployment-wide settings; no record data"),
    summary="The customer bot's settings",
)
async def get_bot_settings(req: Req) -> BotSettingsOut:
    async with req.connection() as conn:
        return _out(await bot_service.read_settings(conn))


@routes.put(
    "/api/v1/assistant/bot/settings",
    access=Access.admin(unscoped="deployment-wide settings; no record data"),
    summary="Change the customer bot's settings",
    errors=(422,),
)
async def put_bot_settings(req: Req, body: BotSettingsIn) -> BotSettingsOut:
    async with req.connection() as conn:
        s = await bot_service.write_settings(conn, req.user.user_id, msgspec.structs.asdict(body))
    return _out(s)


class AssistantAnalyticsQuery(msgspec.Struct, frozen=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 30


class AssistantIntentFigures(msgspec.Struct, frozen=True):
    intent: str
    channel: str
    command: str | None  # the workflow command (intent `workflow`), else null
    command_name: str | None
    volume: int
    success_rate: float
    fallback_rate: float
    handoff_rate: float
    confirmation_rate: float
    refusal_rate: float
    voice_share: float
    p95_ms: float


class AssistantBotFigures(msgspec.Struct, frozen=True):
    conversations: int
    contained: int
    containment_rate: float
    handed_over: int
    handoff_rate: float
    handoffs_by_reason: dict[str, int]
    average_turns: float
    leads: int
    bookings: int


class AssistantAnalytics(msgspec.Struct, frozen=True):
    days: int
    conversations: int
    average_turns: float
    intents: list[AssistantIntentFigures]
    bot: AssistantBotFigures | None


@routes.get(
    "/api/v1/assistant/analytics",
    access=Access.read(
        unscoped="figures over the users the caller may see (self, team, all); the customer "
        "bot's only for managers, admins and viewers"
    ),
    summary="Assistant analytics: per intent and channel volume, success, fallback, handoff, "
    "confirmation, refusal and voice rates, p95 latency; conversations and average turns; the "
    "customer bot's containment, handoffs, leads and bookings",
)
async def get_analytics(req: Req, query: AssistantAnalyticsQuery) -> AssistantAnalytics:
    async with req.connection() as conn:
        a = await analytics.assistant(conn, req.user, query.days)
        b = (
            await analytics.bot(conn, query.days)
            if req.user.role in ("admin", "manager", "viewer")
            else None
        )
    return AssistantAnalytics(
        query.days,
        int(a["conversations"]),
        round(float(a["average_turns"]), 2),
        [msgspec.convert(r, AssistantIntentFigures) for r in a["intents"]],
        msgspec.convert(b, AssistantBotFigures) if b is not None else None,
    )


def setup(app: web.Application) -> None:
    app[CHAT_RESPONDER] = bot_service.respond
    routes.mount(app)
