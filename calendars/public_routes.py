"""Self-booking: links managed by signed-in users, and the public page a customer opens.

    POST   /api/v1/calendar/booking-links        {user_id? | team, title, duration_min,
                                                  window_days, expires_in_s, account_id?}
    GET    /api/v1/calendar/booking-links        the links the caller (or their team) made
    DELETE /api/v1/calendar/booking-links/{id}   revoke (the link answers 410 from then on)
    GET    /book/{token}                          the public page (no login)
    GET    /api/v1/public/book/{token}            what the page shows: title, free slots
    POST   /api/v1/public/book/{token}            book one: {start, name, email, phone?, note?}

A booking creates a meeting (CRM activity, owner the rep, source `booking_link`) through
calendars.meetings, so the rep's calendar and the calendar sync (part A's hook) see it. The
slot is checked again under the rep's advisory lock, so two customers cannot both take it;
`(source, source_ref)` is unique in the CRM, so a double submit books once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from calendars import booking_links, meetings
from calendars.booking_links import Link
from calendars.booking_routes import search_slots
from calendars.meetings import MeetingConflict
from crm.access import may_see_account
from identity.auth import load_principal
from kernel.errors import Conflict, NotFound, Unprocessable
from kernel.http import Access, Reply, Req, Routes
from kernel.pages import page_headers
from kernel.web import SETTINGS

routes = Routes("calendar", "Resources, bookings, meetings, working hours and the slot finder")
public = Routes("booking", "Customers' self-booking pages (signed links, no login)")

LINK_KEY = web.AppKey("calendar_link_key", bytes)
STATIC = Path(__file__).resolve().parent / "static"
MAX_EXPIRY_S = 90 * 24 * 3600
_MINUTE = timedelta(minutes=1)
LEAD_TIME = timedelta(hours=1)  # a customer books at least an hour ahead
MAX_PUBLIC_SLOTS = 60
# per source address and per link, fixed windows (calendars.booking_links.rate_limit)
READS_PER_MIN_ADDR, READS_PER_MIN_LINK = 60, 120
BOOKINGS_PER_HOUR_ADDR, BOOKINGS_PER_HOUR_LINK = 5, 30

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Token = Annotated[str, msgspec.Meta(pattern=booking_links.TOKEN_PATTERN)]
Plain = r"^[^\x00-\x1f\x7f<>]*[^\x00-\x20\x7f<>][^\x00-\x1f\x7f<>]*$"


class CalLinkIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=Plain)]
    duration_min: Annotated[int, msgspec.Meta(ge=5, le=480)] = 30
    user_id: Id | None = None
    team: bool = False
    window_days: Annotated[int, msgspec.Meta(ge=1, le=84)] = 14
    expires_in_s: Annotated[int, msgspec.Meta(ge=60, le=MAX_EXPIRY_S)] = 14 * 24 * 3600
    account_id: Id | None = None


class CalLinkOut(msgspec.Struct, frozen=True):
    id: int
    user_ids: list[int]
    title: str
    duration_min: int
    window_days: int
    account_id: int | None
    created_by: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class CalLinkCreated(msgspec.Struct, frozen=True):
    link: CalLinkOut
    token: str
    url: str


class CalLinkList(msgspec.Struct, frozen=True):
    items: list[CalLinkOut]


class CalLinkPath(msgspec.Struct, frozen=True):
    id: Id


class BookingTokenPath(msgspec.Struct, frozen=True):
    token: Token


class CalPublicSlot(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


class CalPublicPage(msgspec.Struct, frozen=True):
    title: str
    duration_min: int
    slots: list[CalPublicSlot]


class CalPublicBookingIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: Annotated[datetime, msgspec.Meta(tz=True)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=Plain)]
    email: Annotated[
        str,
        msgspec.Meta(
            max_length=254, pattern=r"^[^@\s<>\x00-\x1f]+@[^@\s<>\x00-\x1f]+\.[^@\s<>\x00-\x1f]+$"
        ),
    ]
    phone: Annotated[str, msgspec.Meta(max_length=40, pattern=r"^[0-9+() .\-]{3,40}$")] | None = (
        None
    )
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class CalPublicBooked(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    title: str
    reference: str


def _out(link: Link, now: datetime) -> CalLinkOut:
    return CalLinkOut(
        link.id, list(link.user_ids), link.title, link.duration_min, link.window_days,
        link.account_id, link.created_by, link.created_at, link.expires_at, link.revoked_at,
        link.state(now),  # type: ignore[arg-type]  # one of the three states
    )  # fmt: skip


# --------------------------------------------------------------------------- management


@routes.post(
    "/api/v1/calendar/booking-links",
    access=Access.write(unscoped="a rep links to themself; a manager to their team; checked"),
    summary="Create a public booking link for a rep or a team",
    status=201,
    errors=(404,),  # a user_id the caller may not see
)
async def create_link(req: Req, body: CalLinkIn) -> CalLinkCreated:
    p = req.user
    async with req.connection() as conn:
        if body.team:
            cur = await conn.execute(
                "SELECT id FROM users WHERE id = ANY(%s) AND active AND role IN ('rep', 'manager')"
                " ORDER BY id",
                (list(p.team_user_ids),),
            )
            users = [int(r[0]) for r in await cur.fetchall()][:50]
        else:
            uid = body.user_id or p.user_id
            if not (p.is_admin or uid in p.team_user_ids):
                raise NotFound(f"no user {uid}", field="user_id")
            cur = await conn.execute("SELECT 1 FROM users WHERE id = %s AND active", (uid,))
            if await cur.fetchone() is None:
                raise NotFound(f"no user {uid}", field="user_id")
            users = [uid]
        if not users:
            raise Unprocessable("the team has no active users", field="team")
        if body.account_id is not None and not await may_see_account(conn, p, body.account_id):
            raise NotFound(f"no account {body.account_id}", field="account_id")
        link = await booking_links.create(
            conn,
            user_ids=users,
            title=body.title,
            duration_min=body.duration_min,
            window_days=body.window_days,
            account_id=body.account_id,
            created_by=p.user_id,
            expires_in_s=body.expires_in_s,
        )
    token = booking_links.sign(req.app[LINK_KEY], link)
    origin = f"{req.request.scheme}://{req.request.host}"
    return CalLinkCreated(_out(link, link.created_at), token, f"{origin}/book/{token}")


@routes.get(
    "/api/v1/calendar/booking-links",
    access=Access.read(unscoped="the links the caller's team made (admins: all)"),
    summary="Booking links, newest first",
)
async def list_links(req: Req) -> CalLinkList:
    p = req.user
    async with req.connection() as conn:
        rows = await booking_links.listed(
            conn, None if p.sees_everything else list(p.team_user_ids), 500
        )
    now = datetime.now(UTC)
    return CalLinkList([_out(r, now) for r in rows])


@routes.delete(
    "/api/v1/calendar/booking-links/{id}",
    access=Access.write(unscoped="the links the caller's team made (admins: all)"),
    summary="Revoke a booking link (it answers 410 from then on)",
    status=204,
)
async def revoke_link(req: Req, path: CalLinkPath) -> Reply[None]:
    p = req.user
    async with req.connection() as conn:
        link = await booking_links.get(conn, path.id)
        if link is None or not (p.is_admin or link.created_by in p.team_user_ids):
            raise NotFound(f"no booking link {path.id}", field="id")
        await booking_links.revoke(conn, path.id)
    return Reply(None, status=204)


# --------------------------------------------------------------------------- public

_LINK = "the signed token in the path is the credential; it offers only its own rep's slots"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _addr(req: Req) -> str:
    return req.request.remote or "unknown"


async def _slots(req: Req, link: Link, limit: int) -> list[CalPublicSlot]:
    now = datetime.now(UTC)
    start = now + LEAD_TIME
    end = now + timedelta(days=link.window_days)
    seen: dict[datetime, CalPublicSlot] = {}
    duration = timedelta(minutes=link.duration_min)
    async with req.connection() as conn:
        for uid in link.user_ids:
            try:
                found = await search_slots(
                    conn, [uid], [], start, end, duration, mode="earliest", limit=limit, now=start
                )
            except NotFound:  # a user deactivated since the link was made
                continue
            for s in found:
                seen.setdefault(s.start, CalPublicSlot(s.start, s.end))
    return [seen[k] for k in sorted(seen)][:limit]


@public.get(
    "/api/v1/public/book/{token}",
    access=Access.public(_LINK),
    summary="A booking page's title and free slots",
    errors=(404, 410, 429),
)
async def public_page(req: Req, path: BookingTokenPath) -> CalPublicPage:
    async with req.connection() as conn:
        link = await booking_links.open_link(conn, req.app[LINK_KEY], path.token)
        await booking_links.rate_limit(conn, f"read:addr:{_addr(req)}", READS_PER_MIN_ADDR, 60)
        await booking_links.rate_limit(conn, f"read:link:{link.id}", READS_PER_MIN_LINK, 60)
    return CalPublicPage(link.title, link.duration_min, await _slots(req, link, MAX_PUBLIC_SLOTS))


@public.post(
    "/api/v1/public/book/{token}",
    access=Access.public(_LINK),
    summary="Book a slot on a booking page (201), or 409 when it was just taken",
    status=201,
    errors=(404, 409, 410, 429),
    max_body_bytes=8 * 1024,
)
async def public_book(
    req: Req, path: BookingTokenPath, body: CalPublicBookingIn
) -> CalPublicBooked:
    async with req.connection() as conn:
        link = await booking_links.open_link(conn, req.app[LINK_KEY], path.token)
        await booking_links.rate_limit(
            conn, f"book:addr:{_addr(req)}", BOOKINGS_PER_HOUR_ADDR, 3600
        )
        await booking_links.rate_limit(conn, f"book:link:{link.id}", BOOKINGS_PER_HOUR_LINK, 3600)
    now = datetime.now(UTC)
    start = body.start.astimezone(UTC)
    if start.second or start.microsecond:
        raise Unprocessable(
            "the start must be a whole minute (one of the offered slots)", field="start"
        )
    if start < now + LEAD_TIME or start > now + timedelta(days=link.window_days):
        raise Unprocessable("the start is outside this page's booking window", field="start")
    duration = timedelta(minutes=link.duration_min)
    end = start + duration
    details = f"Booked by {body.name} <{body.email}>" + (f", {body.phone}" if body.phone else "")
    if body.note.strip():
        details += f"\n\n{body.note.strip()}"
    async with req.connection() as conn:
        for uid in link.user_ids:
            async with conn.transaction():
                await meetings.lock_user(conn, uid)
                try:
                    found = await search_slots(
                        conn, [uid], [], start, end, duration, step=_MINUTE, mode="earliest",
                        limit=1, now=start,
                    )  # fmt: skip
                except NotFound:
                    continue
                if not found or found[0].start != start:
                    continue
                rep = await load_principal(conn, uid)
                if rep is None:
                    continue
                ref = f"{link.id}:{int(start.timestamp())}:{body.email.lower()}"
                cur = await conn.execute(
                    "SELECT 1 FROM activities WHERE source = 'booking_link' AND source_ref = %s",
                    (ref,),
                )
                if await cur.fetchone() is not None:
                    raise Conflict("this booking was already made", field="start")
                try:
                    act, _ = await meetings.create_meeting(
                        conn,
                        rep,
                        subject=f"{link.title}: {body.name}",
                        start=start,
                        end=end,
                        tz="UTC",
                        owner_id=uid,
                        account_id=link.account_id,
                        body=details,
                        reminder_min=15,
                        source="booking_link",
                        source_ref=ref,
                    )
                except MeetingConflict:
                    continue
                return CalPublicBooked(start, end, link.title, f"M{act['id']}")
    raise Conflict("that time is no longer free; pick another slot", field="start")


@public.get(
    "/book/{token}",
    access=Access.public(_LINK),
    summary="A customer's booking page",
    content_type="text/html",
    errors=(404, 410),
)
async def page(req: Req, path: BookingTokenPath) -> web.StreamResponse:
    async with req.connection() as conn:
        await booking_links.open_link(conn, req.app[LINK_KEY], path.token)
    headers = page_headers(_CSP, referrer="no-referrer")
    headers["Cache-Control"] = "no-store"
    return web.FileResponse(STATIC / "book.html", headers=headers)


class CalBookFilePath(msgspec.Struct, frozen=True):
    name: Literal["book.js", "book.css"]


@public.get(
    "/book/static/{name}",
    access=Access.public("the booking page's script and styles: no data behind them"),
    summary="The booking page's files",
    content_type="text/javascript, text/css",
)
async def page_file(req: Req, path: CalBookFilePath) -> web.StreamResponse:
    ctype = "text/javascript" if path.name.endswith(".js") else "text/css"
    headers = page_headers(_CSP)
    headers["Content-Type"] = ctype
    headers["Cache-Control"] = "public, max-age=300"
    return web.FileResponse(STATIC / path.name, headers=headers)


def setup(app: web.Application) -> None:
    app[LINK_KEY] = booking_links.link_key(app[SETTINGS])
    routes.mount(app)
    public.mount(app)


__all__ = ["LINK_KEY", "setup"]
