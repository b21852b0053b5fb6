"""Public entry points of the SMS and chat channels.

- `GET /engage/sms/inbound`: the SMS gateway's callback for a message from a phone (Kannel's
  get-url); it carries the deployment's inbound key, compared in constant time (a wrong or
  missing key is a 404).
- `GET /engage/chat/widget.js`: the script a customer's website embeds
  (`<script src=".../engage/chat/widget.js" defer></script>`).
- `GET /engage/chat/socket`: the widget's WebSocket. The visitor opens with
  `{"t": "hello", "visitor": KEY|null, "email": ADDRESS|null, "tz": IANA_ZONE|null}` and
  gets back its visitor key (kept by the widget in localStorage); then
  `{"t": "msg", "id": CLIENT_ID, "text": ...}` per message. Our replies come back as
  `{"t": "msg", "from": "agent", "name": AGENT_NAME, "text": ...}`; replies written with
  no author (the assistant's bot) as `"from": "bot"` with the name it signs with. Limits:
  8 KiB frames, 4,000 characters a message, 20 messages a minute per socket, a visitor
  key of 16-64 URL-safe characters; anything else closes the socket with the reason. The
  time zone is the browser's, used to say times in it (the bot's appointment slots): one
  that zoneinfo does not know, or longer than 64 characters, is ignored (the welcome says
  `"tz": null`), never an error.

A chat responder (`CHAT_RESPONDER`, installed by a package above engage: the assistant's
customer bot) hears each new visitor message after it is stored, one at a time per socket;
what it answers goes through the conversation like an agent's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from aiohttp import WSMsgType, web
from psycopg.rows import dict_row

from engage import channels, sms
from engage.inbox_routes import HUB
from kernel.errors import NotFound
from kernel.http import Access, Req, Routes

log = logging.getLogger(__name__)

routes = Routes("engage-channels", "SMS gateway callback and the web chat widget")
STATIC = Path(__file__).parent / "static"
MAX_FRAME = 8192
RATE_PER_MIN = 20
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_EMAIL = re.compile(r"^[^@\s<>,;:]{1,200}@[^@\s<>,;:]{1,200}$")
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}$")


def visitor_zone(raw: object) -> str | None:
    """The browser's IANA zone when zoneinfo knows it; None for anything else."""
    if not isinstance(raw, str) or len(raw) > 64 or not _ZONE.match(raw):
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return raw


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """A visitor's new chat message, as stored."""

    conversation_id: int
    message_id: int
    visitor_key: str
    email: str | None
    text: str
    tz: str | None = None  # the visitor's IANA time zone (checked against zoneinfo)


class ChatResponder(Protocol):
    async def __call__(self, app: web.Application, turn: ChatTurn) -> None: ...


CHAT_RESPONDER = web.AppKey("chat_responder", ChatResponder)


class SmsInbound(msgspec.Struct, frozen=True):
    """Bounded so that the whole query string, URL-encoded, fits the server's 8 KiB request
    line: a longer (concatenated) SMS is refused with 422 and stays with the gateway."""

    key: Annotated[str, msgspec.Meta(max_length=48)]
    text: Annotated[str, msgspec.Meta(max_length=500)]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    to: Annotated[str, msgspec.Meta(max_length=24)] = ""
    # "from" is a Python keyword: the field is `sender`, its query name `from`
    sender: Annotated[str, msgspec.Meta(min_length=1, max_length=24)] = msgspec.field(
        name="from", default=""
    )


class SmsAck(msgspec.Struct, frozen=True):
    stored: bool


@routes.get(
    "/engage/sms/inbound",
    access=Access.public(
        "called by the SMS gateway, not a user: it proves itself with the deployment's "
        "inbound key (404 without it)"
    ),
    summary="A message from a phone, delivered by the SMS gateway",
    errors=(404,),
)
async def sms_inbound(req: Req, query: SmsInbound) -> SmsAck:
    if not hmac.compare_digest(query.key.encode(), sms.inbound_key(req.settings).encode()):
        raise NotFound("no such endpoint", field="key")
    async with req.connection() as conn:
        mid = await channels.take_in_sms(
            conn, sender=query.sender, receiver=query.to, text=query.text, gateway_id=query.id
        )
    return SmsAck(mid is not None)


@routes.get(
    "/engage/chat/widget.js",
    access=Access.public("the chat widget's script, embedded by customers' websites"),
    summary="The web chat widget (embeddable script)",
    content_type="application/javascript",
)
async def widget(req: Req) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "widget.js",
        headers={"Content-Type": "application/javascript", "Cache-Control": "max-age=300"},
    )


_PAGE = "the inbox page's files (no data; the page signs in through the console's session)"


@routes.get(
    "/engage/inbox/",
    access=Access.public(_PAGE),
    summary="The inbox page",
    content_type="text/html",
)
async def inbox_page(req: Req) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "inbox.html", headers={"Content-Type": "text/html", "Cache-Control": "no-cache"}
    )


@routes.get(
    "/engage/inbox/inbox.js",
    access=Access.public(_PAGE),
    summary="The inbox page's script",
    content_type="application/javascript",
)
async def inbox_script(req: Req) -> web.StreamResponse:
    return web.FileResponse(
        STATIC / "inbox.js",
        headers={"Content-Type": "application/javascript", "Cache-Control": "no-cache"},
    )


@routes.get(
    "/engage/chat/socket",
    access=Access.public(
        "a website visitor's chat: anonymous by design; a visitor reads only the replies "
        "of its own conversation (found by its unguessable visitor key)"
    ),
    summary="The chat widget's WebSocket",
    websocket=True,
)
async def chat_socket(req: Req) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=25.0, max_msg_size=MAX_FRAME)
    await ws.prepare(req.request)
    try:
        first = await ws.receive(timeout=30.0)
    except TimeoutError:
        await ws.close(code=4408, message=b"no hello")
        return ws
    try:
        hello = json.loads(first.data) if first.type == WSMsgType.TEXT else None
    except ValueError:
        hello = None
    if not isinstance(hello, dict) or hello.get("t") != "hello":
        await ws.close(code=4400, message=b"expected a hello")
        return ws
    key = hello.get("visitor") or secrets.token_urlsafe(24)
    email = hello.get("email")
    if not isinstance(key, str) or not _KEY.match(key):
        await ws.close(code=4400, message=b"bad visitor key")
        return ws
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        await ws.close(code=4400, message=b"bad email")
        return ws
    tz = visitor_zone(hello.get("tz"))
    await ws.send_str(json.dumps({"t": "welcome", "visitor": key, "tz": tz}))
    conversation: dict[str, int | None] = {"id": None}
    hub = req.request.app[HUB]
    q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=200)
    hub.queues.add(q)

    async def pump() -> None:
        while True:
            n = await q.get()
            if (
                n.get("channel") != "chat"
                or n.get("direction") != "out"
                or n.get("conversation_id") != conversation["id"]
            ):
                continue
            async with req.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    "SELECT m.body_text, m.created_at, m.author_user_id, m.from_addr,"
                    " u.name AS author_name"
                    " FROM engage_messages m LEFT JOIN users u ON u.id = m.author_user_id"
                    " WHERE m.id = %s",
                    (n["message_id"],),
                )
                row = await cur.fetchone()
            if row is not None:
                agent = row["author_user_id"] is not None
                await ws.send_str(
                    json.dumps(
                        {
                            "t": "msg",
                            "from": "agent" if agent else "bot",
                            # the agent's name; the bot signs its replies (from_addr)
                            "name": (row["author_name"] if agent else row["from_addr"]) or None,
                            "text": row["body_text"],
                            "at": row["created_at"].isoformat(),
                        }
                    )
                )

    task = asyncio.create_task(pump())
    sent: list[float] = []
    try:
        async for m in ws:
            if m.type != WSMsgType.TEXT:
                continue
            try:
                msg = json.loads(m.data)
            except ValueError:
                await ws.close(code=4400, message=b"not JSON")
                break
            if not isinstance(msg, dict) or msg.get("t") != "msg":
                continue
            text, cid = msg.get("text"), msg.get("id")
            if not isinstance(text, str) or not text.strip() or len(text) > channels.MAX_CHAT_CHARS:
                await ws.send_str(json.dumps({"t": "error", "reason": "text: 1-4000 characters"}))
                continue
            if not isinstance(cid, str) or not 1 <= len(cid) <= 64:
                await ws.send_str(json.dumps({"t": "error", "reason": "id: 1-64 characters"}))
                continue
            now = time.monotonic()
            sent[:] = [t for t in sent if now - t < 60.0]
            if len(sent) >= RATE_PER_MIN:
                await ws.send_str(
                    json.dumps({"t": "error", "reason": "too many messages; wait a minute"})
                )
                continue
            sent.append(now)
            async with req.connection() as conn:
                conv, mid = await channels.take_in_chat(
                    conn, visitor_key=key, email=email, text=text.strip(), client_msg_id=cid
                )
            conversation["id"] = conv
            await ws.send_str(json.dumps({"t": "ack", "id": cid, "stored": mid is not None}))
            responder = req.app.get(CHAT_RESPONDER)
            if responder is not None and mid is not None:
                try:
                    await responder(req.app, ChatTurn(conv, mid, key, email, text.strip(), tz))
                except Exception:  # the responder's supervisor: the message itself is stored
                    log.exception("engage: the chat responder failed on message %s", mid)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
        hub.queues.discard(q)
    return ws


def setup(app: web.Application) -> None:
    routes.mount(app)
