"""The assistant over HTTP: one endpoint that third-party voice or chat platforms can call.

    POST /api/v1/assistant/messages   text in; intent, slots, answer, actions, links out

Token-authenticated like every API endpoint; what it reads goes through the CRM store's
access clause, so the assistant never shows what the caller may not see. Writes are
answered with what would be done and `needs_confirmation`; sent again with
`confirm: true`, an account is created (the other writes answer that they are not supported yet).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from aiohttp import web

from assistant.act import act
from assistant.classifier import default_model
from assistant.understand import understand
from kernel.errors import ApiError
from kernel.http import Access, Req, Routes
from kernel.web import SETTINGS

routes = Routes("assistant", "Plain-language commands: understanding and answers")


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


class Reply(msgspec.Struct, frozen=True):
    intent: str
    confidence: float
    slots: dict[str, Any]
    answer: str
    actions: list[dict[str, Any]]
    links: list[str]
    needs_confirmation: bool


@routes.post(
    "/api/v1/assistant/messages",
    access=Access.read(unscoped="every read goes through the CRM store's access clause"),
    summary="Understand one command and answer it",
)
async def post_message(req: Req, body: Message) -> Reply:
    try:
        zone = ZoneInfo(body.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(f"unknown time zone {body.tz!r}", field="tz") from exc
    if body.now is not None and body.now.tzinfo is not None:
        raise ApiError("now is local wall-clock time, without an offset", field="now")
    local = body.now or dt.datetime.now(zone).replace(tzinfo=None, microsecond=0)
    # loaded or fitted off the event loop (at once when the start-up warm-up has run)
    model = await asyncio.to_thread(default_model, req.settings.state_dir / "cache")
    u = understand(body.text, local, fallback=model)
    async with req.connection() as conn:
        answer = await act(conn, req.user, u, local.replace(tzinfo=zone), body.confirm)
    return Reply(
        u.intent,
        round(u.confidence, 3),
        u.slots,
        answer.text,
        answer.actions,
        answer.links,
        answer.needs_confirmation,
    )


async def _warm(app: web.Application) -> None:
    # Train the fallback model in the background so the first message does not wait for it.
    cache = app[SETTINGS].state_dir / "cache"
    asyncio.get_running_loop().run_in_executor(None, default_model, cache)


def setup(app: web.Application) -> None:
    routes.mount(app)
    app.on_startup.append(_warm)
