"""HTTP API of e-mail: mailboxes, templates, sending, consent, data-subject requests, and
the public tracking links (open pixel, click redirect, RFC 8058 one-click unsubscribe).

Sending to a contact needs a writing role and sight of the contact (404 otherwise); a send
the contact has not consented to answers 422 with the reason (code `no_consent`). Tracking
links are public (a mail client follows them) and signed: a forged or altered token is a
404, so the click redirect never sends anyone to a URL we did not write. The one-click
unsubscribe (a POST with `List-Unsubscribe=One-Click`) records the withdrawal at once, so
the very next send of that purpose is refused.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg.rows import dict_row

from engage import consent, links, mailboxes, privacy, send
from engage.access import contact_scope
from engage.errors import ConsentRefused
from engage.render import Attachment
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, RawBody, Reply, Req, Routes

routes = Routes("engage", "E-mail: mailboxes, templates, sending, tracking and consent")
API = "/api/v1/engage"

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Body = Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Address = Annotated[
    str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s<>,;:]+@[^@\s<>,;:]+$")
]
Channel = Literal["email", "sms", "chat"]
Purpose = Literal["transactional", "marketing", "service"]
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class MailboxConnect(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    address: Address
    display_name: Text | None = None
    kind: Literal["user", "team"] = "user"
    owner_user_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    imap_host: Text | None = None
    imap_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    imap_tls: bool = False
    imap_user: Text | None = None
    imap_password: Text | None = None
    rate_per_min: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 600
    leads_from_unknown: bool = False
    leads_per_day: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 50


class MailboxOut(msgspec.Struct, frozen=True):
    id: int
    address: str
    display_name: str | None
    kind: str
    owner_user_id: int | None
    imap_host: str | None
    imap_port: int | None
    folder: str
    last_uid: int
    rate_per_min: int
    last_sync_at: datetime | None
    last_error: str | None
    leads_from_unknown: bool
    leads_per_day: int


def _mailbox_out(r: dict[str, Any]) -> MailboxOut:
    return MailboxOut(
        r["id"],
        r["address"],
        r["display_name"],
        r["kind"],
        r["owner_user_id"],
        r["imap_host"],
        r["imap_port"],
        r["folder"],
        r["last_uid"],
        r["rate_per_min"],
        r["last_sync_at"],
        r["last_error"],
        r["leads_from_unknown"],
        r["leads_per_day"],
    )


@routes.post(
    f"{API}/mailboxes",
    access=Access.admin(unscoped="mailboxes are the company's configuration"),
    summary="Connect a user's or a team's mailbox (created in the embedded server when local)",
    status=201,
    errors=(409,),
)
async def connect(req: Req, body: MailboxConnect) -> MailboxOut:
    async with req.connection() as conn:
        row = await mailboxes.connect_mailbox(
            conn,
            req.settings,
            address=body.address,
            display_name=body.display_name,
            kind=body.kind,
            owner_user_id=body.owner_user_id,
            imap_host=body.imap_host,
            imap_port=body.imap_port,
            imap_tls=body.imap_tls,
            imap_user=body.imap_user,
            imap_password=body.imap_password,
            rate_per_min=body.rate_per_min,
            leads_from_unknown=body.leads_from_unknown,
            leads_per_day=body.leads_per_day,
        )
    return _mailbox_out(row)


class MailboxPath(msgspec.Struct, frozen=True):
    mailbox_id: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class MailboxLeadRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    leads_from_unknown: bool
    leads_per_day: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 50


@routes.put(
    f"{API}/mailboxes/{{mailbox_id}}/lead-rule",
    access=Access.admin(unscoped="mailboxes are the company's configuration"),
    summary="Turn on or off the rule that makes a lead of an unknown sender (with a daily limit)",
)
async def put_lead_rule(req: Req, path: MailboxPath, body: MailboxLeadRule) -> MailboxOut:
    async with req.connection() as conn:
        row = await mailboxes.set_lead_rule(
            conn, path.mailbox_id, enabled=body.leads_from_unknown, per_day=body.leads_per_day
        )
    if row is None:
        raise NotFound(f"no mailbox {path.mailbox_id}", field="mailbox_id")
    return _mailbox_out(row)


@routes.get(
    f"{API}/mailboxes",
    access=Access.managers(
        unscoped="team mailboxes are the company's configuration; a user's own mailbox is "
        "filtered here to its owner's manager"
    ),
    summary="Connected mailboxes and their sync state (a manager: the team mailboxes and "
    "those of the manager's team)",
)
async def list_boxes(req: Req) -> list[MailboxOut]:
    async with req.connection() as conn:
        rows = await mailboxes.list_mailboxes(conn)
    user = req.user
    if not user.sees_everything:
        # a person's mailbox (address, server, sync errors) is theirs and their manager's
        team = set(user.team_user_ids)
        rows = [r for r in rows if r["kind"] == "team" or r["owner_user_id"] in team]
    return [_mailbox_out(r) for r in rows]


class EmailTemplateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Text
    subject: Text
    html: Body
    text_body: Body | None = None
    sms_body: Annotated[str, msgspec.Meta(min_length=1, max_length=1600)] | None = None
    purpose: Purpose = "transactional"


class EmailTemplateOut(msgspec.Struct, frozen=True):
    id: int
    name: str
    subject: str
    html: str
    text_body: str | None
    sms_body: str | None
    purpose: str


@routes.post(
    f"{API}/templates",
    access=Access.managers(unscoped="templates are shared by the whole company"),
    summary="Create or replace a template (HTML with merge fields, text and SMS parts)",
    status=201,
)
async def put_template(req: Req, body: EmailTemplateIn) -> EmailTemplateOut:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "INSERT INTO engage_templates (name, subject, html, text_body, sms_body, purpose)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " subject = EXCLUDED.subject, html = EXCLUDED.html, text_body = EXCLUDED.text_body,"
            " sms_body = EXCLUDED.sms_body, purpose = EXCLUDED.purpose, updated_at = now()"
            " RETURNING id, name, subject, html, text_body, sms_body, purpose",
            (body.name, body.subject, body.html, body.text_body, body.sms_body, body.purpose),
        )
        row = await cur.fetchone()
        assert row is not None
    return EmailTemplateOut(**row)


@routes.get(
    f"{API}/templates",
    access=Access.read(unscoped="templates are shared by the whole company"),
    summary="Templates (the inbox's canned replies)",
)
async def list_templates(req: Req) -> list[EmailTemplateOut]:
    async with req.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, name, subject, html, text_body, sms_body, purpose FROM engage_templates"
            " ORDER BY name LIMIT 1000"
        )
        return [EmailTemplateOut(**r) for r in await cur.fetchall()]


class EngageContactPath(msgspec.Struct, frozen=True):
    contact_id: int


class EmailAttachmentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    filename: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f]+$")
    ]
    content_type: Annotated[str, msgspec.Meta(pattern=r"^[a-z]+/[a-z0-9.+-]+$", max_length=100)]
    data_base64: Annotated[str, msgspec.Meta(max_length=14_000_000)]


class EmailIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    idempotency_key: Key
    contact_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    to: Address | None = None
    sender_mailbox_id: Annotated[int, msgspec.Meta(ge=1)] | None = None
    template: Text | None = None
    subject: Text | None = None
    html: Body | None = None
    text: Body | None = None
    merge: dict[
        Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_]{0,40}$")],
        dict[str, str | int | float | None],
    ] = {}
    attachments: Annotated[list[EmailAttachmentIn], msgspec.Meta(max_length=10)] = []
    purpose: Purpose | None = None
    in_reply_to: Annotated[str, msgspec.Meta(pattern=r"^<[^<>\s]{1,500}>$")] | None = None


class EmailOut(msgspec.Struct, frozen=True):
    id: int
    state: str
    reason: str | None
    message_id: str
    to_address: str
    sender_address: str
    subject: str
    attempts: int
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    contact_id: int | None


@routes.post(
    f"{API}/emails",
    access=Access.write(
        unscoped="the contact is checked in the handler (404 unless the caller may see it)"
    ),
    summary="Send an e-mail (queued; sent by the job system)",
    status=202,
    errors=(404,),
)
async def send_email(req: Req, body: EmailIn) -> EmailOut:
    """From the caller's own mailbox unless a team mailbox is named. The same
    `idempotency_key` never sends a second message."""
    atts = []
    for i, a in enumerate(body.attachments):
        try:
            data = base64.b64decode(a.data_base64, validate=True)
        except ValueError:
            raise Unprocessable(
                f"attachments.{i}: not base64", field=f"attachments.{i}.data_base64"
            ) from None
        atts.append(Attachment(a.filename, a.content_type, data))
    if body.contact_id is None and body.to is None:
        raise Unprocessable("a contact_id or a to address is needed", field="contact_id")
    async with req.connection() as conn:
        purpose: str = body.purpose or "transactional"
        if body.contact_id is not None:
            await contact_scope(req, EngageContactPath(body.contact_id))
        if body.template is not None and body.purpose is None:
            cur = await conn.execute(
                "SELECT purpose FROM engage_templates WHERE name = %s", (body.template,)
            )
            row = await cur.fetchone()
            purpose = str(row[0]) if row else purpose
        reason = await consent.refusal(
            conn, contact_id=body.contact_id, channel="email", purpose=purpose, address=body.to
        )
        if reason is not None:
            raise ConsentRefused(reason)
        oid = await send.enqueue_email(
            conn,
            idempotency_key=f"api:{req.user.user_id}:{body.idempotency_key}",
            config=send.send_config(req.settings),
            sender_user_id=None if body.sender_mailbox_id else req.user.user_id,
            sender_mailbox_id=body.sender_mailbox_id,
            to=body.to,
            contact_id=body.contact_id,
            template=body.template,
            subject=body.subject,
            html=body.html,
            text=body.text,
            merge=body.merge,
            attachments=atts,
            purpose=purpose,
            in_reply_to=body.in_reply_to,
        )
        st = await send.outbox_state(conn, oid)
    assert st is not None
    return EmailOut(**st)


class EmailPath(msgspec.Struct, frozen=True):
    email_id: int


async def _email_scope(req: Req, path: EmailPath) -> None:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT o.contact_id, m.owner_user_id FROM engage_outbox o"
            " JOIN engage_mailboxes m ON m.id = o.mailbox_id WHERE o.id = %s",
            (path.email_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no e-mail {path.email_id}", field="email_id")
    if req.user.sees_everything or row[1] == req.user.user_id:
        return
    if row[0] is None:
        raise NotFound(f"no e-mail {path.email_id}", field="email_id")
    await contact_scope(req, EngageContactPath(int(row[0])))


@routes.get(
    f"{API}/emails/{{email_id}}",
    access=Access.read(scope=_email_scope),
    summary="An e-mail's state: queued, sending, sent, failed or refused (with the reason)",
)
async def get_email(req: Req, path: EmailPath) -> EmailOut:
    async with req.connection() as conn:
        st = await send.outbox_state(conn, path.email_id)
    if st is None:
        raise NotFound(f"no e-mail {path.email_id}", field="email_id")
    return EmailOut(**st)


# --------------------------------------------------------------------------- consent


class ConsentOut(msgspec.Struct, frozen=True):
    channel: str
    purpose: str
    granted: bool
    source: str
    updated_at: datetime | None


class ConsentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    channel: Channel
    purpose: Purpose
    granted: bool
    source: Text = "recorded by a user"


@routes.get(
    f"{API}/contacts/{{contact_id}}/consent",
    access=Access.read(scope=contact_scope),
    summary="A contact's consent by channel and purpose, and where each decision comes from",
)
async def get_consent(req: Req, path: EngageContactPath) -> list[ConsentOut]:
    async with req.connection() as conn:
        return [ConsentOut(**c) for c in await consent.consents(conn, path.contact_id)]


@routes.put(
    f"{API}/contacts/{{contact_id}}/consent",
    access=Access.write(scope=contact_scope),
    summary="Record a contact's consent (or its withdrawal) for a channel and purpose",
)
async def put_consent(req: Req, path: EngageContactPath, body: ConsentIn) -> list[ConsentOut]:
    async with req.connection() as conn:
        await consent.set_consent(
            conn,
            path.contact_id,
            body.channel,
            body.purpose,
            body.granted,
            f"{body.source} (user {req.user.user_id})",
        )
        return [ConsentOut(**c) for c in await consent.consents(conn, path.contact_id)]


class ContactExport(msgspec.Struct, frozen=True):
    contact: dict[str, Any]
    consent: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    events: list[dict[str, Any]]


@routes.get(
    f"{API}/contacts/{{contact_id}}/export",
    access=Access.managers(scope=contact_scope),
    summary="Data-subject export: everything engage holds about a contact",
)
async def export(req: Req, path: EngageContactPath) -> ContactExport:
    async with req.connection() as conn:
        return ContactExport(**await privacy.export_contact(conn, path.contact_id))


class ContactErasure(msgspec.Struct, frozen=True):
    erased: dict[str, int]


@routes.delete(
    f"{API}/contacts/{{contact_id}}/engagement",
    access=Access.users(("admin",), scope=contact_scope),
    summary="Data-subject erasure: delete a contact's messages, e-mails, events, consent",
)
async def erase(req: Req, path: EngageContactPath) -> ContactErasure:
    async with req.connection() as conn:
        return ContactErasure(await privacy.erase_contact(conn, path.contact_id))


# --------------------------------------------------------------------------- public links


class LinkTokenPath(msgspec.Struct, frozen=True):
    token: Annotated[str, msgspec.Meta(max_length=200)]


class LinkClickQuery(msgspec.Struct, frozen=True):
    u: Annotated[str, msgspec.Meta(max_length=4000)]


_LINKS = "a link in an e-mail, signed for one message; a forged or altered token is a 404"


async def _track(req: Req, kind: str, token: str, url: str = "") -> dict[str, Any]:
    async with req.connection() as conn:
        key = await links.link_key(conn)
        track_id = links.verify(key, kind, token, url)
        if track_id is None:
            raise NotFound("no such link", field="token")
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, contact_id, purpose, to_address FROM engage_outbox WHERE track_id = %s",
            (track_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound("no such link", field="token")
        return row


@routes.get(
    "/e/o/{token}",
    access=Access.public(_LINKS),
    summary="Open pixel",
    content_type="image/gif",
    errors=(404,),
)
async def open_pixel(req: Req, path: LinkTokenPath) -> web.StreamResponse:
    token = path.token.removesuffix(".gif")
    row = await _track(req, "open", token)
    async with req.connection() as conn:
        await conn.execute(
            "UPDATE engage_outbox SET opened_at = coalesce(opened_at, now()) WHERE id = %s",
            (row["id"],),
        )
        await conn.execute(
            "INSERT INTO engage_events (outbox_id, contact_id, kind) VALUES (%s, %s, 'open')",
            (row["id"], row["contact_id"]),
        )
    return web.Response(body=PIXEL, content_type="image/gif", headers={"Cache-Control": "no-store"})


@routes.get(
    "/e/c/{token}",
    access=Access.public(_LINKS),
    summary="Click redirect (to the signed target only)",
    content_type="text/plain",
    errors=(404,),
)
async def click(req: Req, path: LinkTokenPath, query: LinkClickQuery) -> web.StreamResponse:
    if not query.u.startswith(("http://", "https://")):
        raise NotFound("no such link", field="token")
    row = await _track(req, "click", path.token, query.u)
    async with req.connection() as conn:
        await conn.execute(
            "UPDATE engage_outbox SET clicked_at = coalesce(clicked_at, now()) WHERE id = %s",
            (row["id"],),
        )
        await conn.execute(
            "INSERT INTO engage_events (outbox_id, contact_id, kind, url) VALUES (%s, %s, 'click', %s)",
            (row["id"], row["contact_id"], query.u[:2000]),
        )
    raise web.HTTPFound(query.u)


# The pages a person sees (the link in an e-mail's footer): readable on a phone, in English,
# with a heading; the button posts the same one-click form a mail client posts.
_PAGE_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:2em auto;padding:0 1em}}
button{{font:inherit;padding:.5em 1em}}</style></head><body><main>"""
_UNSUB_PAGE = _PAGE_HEAD.format(title="Unsubscribe") + (
    '<h1>Unsubscribe</h1><form method="post">'
    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
    "<p>Stop receiving these e-mails?</p>"
    '<button type="submit">Unsubscribe</button></form></main></body></html>'
)
_UNSUBSCRIBED_PAGE = _PAGE_HEAD.format(title="Unsubscribed") + (
    "<h1>You are unsubscribed</h1><p>You will get no more PURPOSE e-mails from us. "
    "You may close this page.</p></main></body></html>"
)


@routes.get(
    "/e/u/{token}",
    access=Access.public(_LINKS),
    summary="Unsubscribe page (a button that posts the one-click form)",
    content_type="text/html",
    errors=(404,),
)
async def unsubscribe_page(req: Req, path: LinkTokenPath) -> web.StreamResponse:
    await _track(req, "unsub", path.token)
    return web.Response(text=_UNSUB_PAGE, content_type="text/html")


class Unsubscribed(msgspec.Struct, frozen=True):
    unsubscribed: bool
    channel: str
    purpose: str


@routes.post(
    "/e/u/{token}",
    access=Access.public(_LINKS),
    summary="RFC 8058 one-click unsubscribe: honoured at once",
    body=RawBody(
        ("application/x-www-form-urlencoded", "multipart/form-data"),
        "List-Unsubscribe=One-Click",
    ),
    max_body_bytes=4096,
    errors=(404,),
)
async def unsubscribe(
    req: Req, path: LinkTokenPath, body: bytes
) -> Reply[Unsubscribed] | web.Response:
    row = await _track(req, "unsub", path.token)
    async with req.connection() as conn:
        if row["contact_id"] is not None:
            await consent.set_consent(
                conn,
                row["contact_id"],
                "email",
                row["purpose"],
                False,
                "one-click unsubscribe (RFC 8058)",
            )
        else:
            await consent.mark_address(conn, row["to_address"], "complained", "unsubscribed")
        await conn.execute(
            "INSERT INTO engage_events (outbox_id, contact_id, kind) VALUES (%s, %s, 'unsubscribe')",
            (row["id"], row["contact_id"]),
        )
    if "text/html" in req.request.headers.get("Accept", ""):
        # the unsubscribe page's button, in a browser: a page in words, not the JSON
        purpose = html.escape(str(row["purpose"]))
        return web.Response(
            text=_UNSUBSCRIBED_PAGE.replace("PURPOSE", purpose), content_type="text/html"
        )
    return Reply(Unsubscribed(True, "email", row["purpose"]))


def setup(app: web.Application) -> None:
    from engage import channel_routes, inbox_routes

    routes.mount(app)
    inbox_routes.setup(app)
    channel_routes.setup(app)
