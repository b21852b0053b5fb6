"""HTTP API of the inbox: conversations across channels, assignment, statuses, notes,
replies on the customer's channel (or another), canned replies from templates, and the live
WebSocket that pushes new messages to the console as they are committed.

Live: one LISTEN connection per API worker on `engage_inbox` (announced by
`engage.conversations.add_message` in the writing transaction); each socket receives the
announcements of conversations its user may see (checked against the database per
message, so a changed territory or assignment counts at once). The socket authenticates
like the console's: the app's authenticator on the upgrade, or a token as first message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from aiohttp import WSMsgType, web
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from engage import channels, conversations, journey, mentions
from engage.access import contact_scope, conversation_clause, may_see_conversation
from identity.auth import principal_for_token
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import AUTHENTICATE, Access, Req, Routes
from kernel.principal import Principal
from kernel.web import SETTINGS, same_origin

log = logging.getLogger(__name__)

routes = Routes("engage-inbox", "The omnichannel inbox: conversations, replies, notes, live")
API = "/api/v1/engage"

Status = Literal["open", "pending", "resolved"]


class ConversationOut(msgspec.Struct, frozen=True):
    id: int
    contact_id: int | None
    lead_id: int | None
    account_id: int | None
    visitor_email: str | None
    subject: str | None
    status: str
    assignee_user_id: int | None
    team_mailbox_id: int | None
    last_channel: str | None
    last_message_at: datetime
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    waiting_since: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    sla_breached: bool


class ConversationMessageOut(msgspec.Struct, frozen=True):
    id: int
    conversation_id: int
    channel: str
    direction: str
    kind: str
    contact_id: int | None
    author_user_id: int | None
    from_addr: str | None
    to_addr: str | None
    subject: str | None
    body_text: str
    external_id: str | None
    created_at: datetime
    # on a new note: the users its @mentions notified
    mentioned_user_ids: list[int] = msgspec.field(default_factory=list)


class ConversationDetail(msgspec.Struct, frozen=True):
    conversation: ConversationOut
    messages: list[ConversationMessageOut]


class ConversationListQuery(msgspec.Struct, frozen=True):
    status: Status | None = None
    assignee: Literal["me", "none", "any"] = "any"
    contact_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    channel: Literal["email", "sms", "chat"] | None = None
    team_mailbox_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class ConversationPath(msgspec.Struct, frozen=True):
    conversation_id: int


async def _conv_scope(req: Req, path: ConversationPath) -> None:
    async with req.connection() as conn:
        if not await may_see_conversation(conn, req.user, path.conversation_id):
            raise NotFound(f"no conversation {path.conversation_id}", field="conversation_id")


@routes.get(
    f"{API}/conversations",
    access=Access.read(
        unscoped="filtered to conversations whose contact, lead or assignment the caller may see"
    ),
    summary="Conversations, newest activity first",
)
async def list_conversations(req: Req, query: ConversationListQuery) -> list[ConversationOut]:
    cond, params = conversation_clause(req.user)
    where = [cond]
    if query.status:
        where.append(sql.SQL("c.status = %s"))
        params.append(query.status)
    if query.assignee == "me":
        where.append(sql.SQL("c.assignee_user_id = %s"))
        params.append(req.user.user_id)
    elif query.assignee == "none":
        where.append(sql.SQL("c.assignee_user_id IS NULL"))
    if query.contact_id:
        where.append(sql.SQL("c.contact_id = %s"))
        params.append(query.contact_id)
    if query.team_mailbox_id:
        where.append(sql.SQL("c.team_mailbox_id = %s"))
        params.append(query.team_mailbox_id)
    if query.channel:
        where.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM engage_messages m WHERE m.conversation_id = c.id AND m.channel = %s)"
            )
        )
        params.append(query.channel)
    q = sql.SQL(
        "SELECT " + conversations.CONV_COLUMNS + " FROM engage_conversations c WHERE {}"
        " ORDER BY c.last_message_at DESC, c.id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    async with req.read_connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(q, [*params, query.limit])
        return [ConversationOut(**r) for r in await cur.fetchall()]


@routes.get(
    f"{API}/conversations/{{conversation_id}}",
    access=Access.read(scope=_conv_scope),
    summary="A conversation with its messages of every channel",
)
async def get_conversation(req: Req, path: ConversationPath) -> ConversationDetail:
    async with req.connection() as conn:
        c = await conversations.get_conversation(conn, path.conversation_id)
        if c is None:
            raise NotFound(f"no conversation {path.conversation_id}", field="conversation_id")
        msgs = await conversations.messages(conn, path.conversation_id)
    return ConversationDetail(ConversationOut(**c), [ConversationMessageOut(**m) for m in msgs])


class ConversationPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: Status | None = None
    assignee_user_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    unassign: bool = False
    # a team: a team mailbox's id (support@, sales@); the team's queue is that filter
    team_mailbox_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)] | None = None
    unassign_team: bool = False


@routes.patch(
    f"{API}/conversations/{{conversation_id}}",
    access=Access.write(scope=_conv_scope),
    summary="Assign a conversation to a user and/or a team, or set its status (open, pending,"
    " resolved)",
    errors=(404,),
)
async def patch_conversation(
    req: Req, path: ConversationPath, body: ConversationPatch
) -> ConversationOut:
    async with req.connection() as conn:
        if body.assignee_user_id is not None:
            cur = await conn.execute(
                "SELECT 1 FROM users WHERE id = %s AND active", (body.assignee_user_id,)
            )
            if await cur.fetchone() is None:
                raise Unprocessable("no such active user", field="assignee_user_id")
            await conn.execute(
                "UPDATE engage_conversations SET assignee_user_id = %s WHERE id = %s",
                (body.assignee_user_id, path.conversation_id),
            )
        elif body.unassign:
            await conn.execute(
                "UPDATE engage_conversations SET assignee_user_id = NULL WHERE id = %s",
                (path.conversation_id,),
            )
        if body.team_mailbox_id is not None:
            cur = await conn.execute(
                "SELECT 1 FROM engage_mailboxes WHERE id = %s AND kind = 'team'",
                (body.team_mailbox_id,),
            )
            if await cur.fetchone() is None:
                raise Unprocessable("no such team mailbox", field="team_mailbox_id")
            await conn.execute(
                "UPDATE engage_conversations SET team_mailbox_id = %s WHERE id = %s",
                (body.team_mailbox_id, path.conversation_id),
            )
        elif body.unassign_team:
            await conn.execute(
                "UPDATE engage_conversations SET team_mailbox_id = NULL WHERE id = %s",
                (path.conversation_id,),
            )
        if body.status is not None:
            await conn.execute(
                "UPDATE engage_conversations SET status = %s,"
                " resolved_at = CASE WHEN %s = 'resolved' THEN now() END WHERE id = %s",
                (body.status, body.status, path.conversation_id),
            )
        c = await conversations.get_conversation(conn, path.conversation_id)
    assert c is not None
    return ConversationOut(**c)


class ConversationNoteIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


@routes.post(
    f"{API}/conversations/{{conversation_id}}/notes",
    access=Access.write(scope=_conv_scope),
    summary="An internal note (never sent to the customer); @mentioned users who may see"
    " the conversation are notified",
    status=201,
)
async def add_note(
    req: Req, path: ConversationPath, body: ConversationNoteIn
) -> ConversationMessageOut:
    async with req.connection() as conn:
        mid = await conversations.add_message(
            conn,
            conversation_id=path.conversation_id,
            channel="note",
            direction="note",
            author_user_id=req.user.user_id,
            body_text=body.body,
        )
        assert mid is not None
        notified = await mentions.notify_mentions(
            conn,
            conversation_id=path.conversation_id,
            note_id=mid,
            author_user_id=req.user.user_id,
            author_name=req.user.email,
            text=body.body,
        )
        return ConversationMessageOut(
            **await conversations.message(conn, mid), mentioned_user_ids=notified
        )


class ConversationReplyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)] | None = None
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    channel: Literal["email", "sms", "chat"] | None = None


class ConversationReplyOut(msgspec.Struct, frozen=True):
    channel: str
    message_id: int | None
    email_id: int | None


@routes.post(
    f"{API}/conversations/{{conversation_id}}/replies",
    access=Access.write(scope=_conv_scope),
    summary="Reply on the channel the customer used last (or the one named); a template is a canned reply",
    status=202,
    errors=(404,),
)
async def reply(
    req: Req, path: ConversationPath, body: ConversationReplyIn
) -> ConversationReplyOut:
    if (body.body is None) == (body.template is None):
        raise Unprocessable("give a body or a template", field="body")
    async with req.connection() as conn:
        res = await channels.reply(
            conn,
            req.settings,
            conversation_id=path.conversation_id,
            user_id=req.user.user_id,
            text=body.body,
            template=body.template,
            channel=body.channel,
            idempotency_key=f"reply:{req.user.user_id}:{body.idempotency_key}",
        )
    return ConversationReplyOut(res.channel, res.message_id, res.email_id)


# --------------------------------------------------------------------------- journey, analytics


class JourneyPath(msgspec.Struct, frozen=True):
    contact_id: int


class JourneyQuery(msgspec.Struct, frozen=True):
    channel: Literal["email", "sms", "chat", "note", "crm"] | None = None


class JourneyItem(msgspec.Struct, frozen=True):
    at: datetime | None
    kind: str
    channel: str
    title: str
    ref: str


class Journey(msgspec.Struct, frozen=True):
    contact_id: int
    account_id: int | None
    preferred_channel: str | None
    preferred_hour_utc: int | None
    items: list[JourneyItem]


@routes.get(
    f"{API}/contacts/{{contact_id}}/journey",
    access=Access.read(scope=contact_scope),
    summary="Every touch with a contact across channels, deals and work orders, newest first",
)
async def get_journey(req: Req, path: JourneyPath, query: JourneyQuery) -> Journey:
    async with req.read_connection() as conn:
        j = await journey.journey(conn, req.user, path.contact_id, query.channel)
    return Journey(
        j["contact_id"],
        j["account_id"],
        j["preferred_channel"],
        j["preferred_hour_utc"],
        [JourneyItem(**i) for i in j["items"]],
    )


class AnalyticsQuery(msgspec.Struct, frozen=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 30


class ChannelFigures(msgspec.Struct, frozen=True):
    channel: str
    inbound: int
    outbound: int
    conversations: int
    median_first_response_s: float | None = None
    median_resolution_s: float | None = None


class TemplateFigures(msgspec.Struct, frozen=True):
    template: str
    sent: int
    open_rate: float
    click_rate: float
    reply_rate: float


class ChannelAnalytics(msgspec.Struct, frozen=True):
    days: int
    channels: list[ChannelFigures]
    templates: list[TemplateFigures]


@routes.get(
    f"{API}/analytics",
    access=Access.managers(unscoped="company-wide counts, no records"),
    summary="Volume, response and resolution times per channel; open/click/reply rates per template",
)
async def get_analytics(req: Req, query: AnalyticsQuery) -> ChannelAnalytics:
    async with req.read_connection() as conn:
        a = await journey.analytics(conn, query.days)
    return ChannelAnalytics(
        a["days"],
        [ChannelFigures(**c) for c in a["channels"]],
        [TemplateFigures(**t) for t in a["templates"]],
    )


# --------------------------------------------------------------------------- live


class _Hub:
    """One LISTEN connection per app; every socket gets its own bounded queue."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {conversations.INBOX_CHANNEL}")
                    backoff = 0.5
                    async for n in conn.notifies():
                        try:
                            msg = json.loads(n.payload)
                        except ValueError:
                            continue
                        for q in list(self.queues):
                            if q.full():
                                with contextlib.suppress(asyncio.QueueEmpty):
                                    q.get_nowait()  # drop the oldest: the client re-reads the list
                            q.put_nowait(msg)
            except psycopg.OperationalError as exc:
                log.warning("engage live: LISTEN lost (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)


HUB = web.AppKey("engage_inbox_hub", _Hub)
HUB_TASK = web.AppKey("engage_inbox_hub_task", asyncio.Task[None])


async def _principal_of(req: Req, ws: web.WebSocketResponse) -> Principal | None:
    with contextlib.suppress(ApiError):
        p = await req.request.app[AUTHENTICATE](req.request)
        # cookies count only from a page of this origin (a bearer header no page can add)
        if p is not None and (
            req.request.headers.get("Authorization")
            or ("Origin" in req.request.headers and same_origin(req.request))
        ):
            return p
    try:
        first = await ws.receive(timeout=10.0)
    except TimeoutError:
        return None
    if first.type != WSMsgType.TEXT or len(first.data) > 512:
        return None
    token = first.data.strip()
    async with req.connection() as conn:
        return await principal_for_token(conn, token)


@routes.get(
    f"{API}/inbox/live",
    access=Access.public(
        "the socket authenticates itself (the app's authenticator on the upgrade, or a token "
        "as the first message) and forwards only conversations the caller may see"
    ),
    summary="New messages of the inbox as they arrive (WebSocket)",
    websocket=True,
)
async def live(req: Req) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(req.request)
    principal = await _principal_of(req, ws)
    if principal is None:
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    hub = req.request.app[HUB]
    q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
    hub.queues.add(q)
    await ws.send_str(json.dumps({"k": "hello", "user_id": principal.user_id}))

    async def pump() -> None:
        while True:
            msg = await q.get()
            async with req.connection() as conn:
                if not await may_see_conversation(conn, principal, int(msg["conversation_id"])):
                    continue
            await ws.send_str(json.dumps({"k": "message", **msg}))

    task = asyncio.create_task(pump())
    try:
        async for m in ws:
            if m.type == WSMsgType.TEXT and m.data == "ping":
                await ws.send_str('{"k":"pong"}')
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
        hub.queues.discard(q)
    return ws


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = _Hub(app[SETTINGS].dsn)
    app[HUB] = hub
    app[HUB_TASK] = asyncio.create_task(hub.run())
    yield
    app[HUB_TASK].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[HUB_TASK]


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_hub_ctx)
    routes.mount(app)
