"""HTTP API of calendars: sync opt-in and status, events with recurrence and attendees,
expanded occurrences, ICS feeds and ICS import.

Access: a user's sync settings and feeds are seen by the user, their manager (the user is
in the caller's team) and admins; changed by the user (or an admin). Others get 404, as
if the user had no calendar. Events are CRM activities and follow the CRM's record scope
(crm.store.get_record: 404 when the caller may not see the activity). The feed URL
itself is public: its secret token is the credential, and a revoked or unknown token
is a 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import AsyncConnection

from calendars import feeds, importer, itip, service
from calendars.jobs import enqueue_sync
from calendars.model import Attendee, CalendarError, Override, zone
from calendars.recurrence import MAX_INSTANCES, expand
from calendars.store import account, load_events
from crm import hooks
from crm import store as crm_store
from crm.entities import ACTIVITIES
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, RawBody, Reply, Req, Routes
from kernel.principal import Forbidden, Principal

routes = Routes("calendars", "Calendar sync (CalDAV), recurring events, invitations, ICS feeds")

API = "/api/v1/calendar"
MAX_WINDOW_DAYS = 370

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
LongText = Annotated[str, msgspec.Meta(max_length=100_000)]
Tz = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


# --------------------------------------------------------------------------- access


def _may_see_user(p: Principal, user_id: int) -> bool:
    return p.is_admin or user_id in p.team_user_ids


async def user_scope(req: Req, path: CalUserPath) -> None:
    if not _may_see_user(req.user, path.user_id):
        raise NotFound(f"user {path.user_id} has no calendar you may see", field="user_id")


async def activity_scope(req: Req, path: CalEventPath) -> None:
    async with req.connection() as conn:
        await crm_store.get_record(conn, ACTIVITIES, req.user, path.activity_id)


def _require_self(p: Principal, user_id: int) -> None:
    if user_id != p.user_id and not p.is_admin:
        raise Forbidden("only the user themself (or an admin) changes their calendar sync")


async def _require_user(conn: AsyncConnection[Any], user_id: int) -> None:
    cur = await conn.execute("SELECT 1 FROM users WHERE id = %s AND active", (user_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"no active user {user_id}", field="user_id")


# --------------------------------------------------------------------------- sync settings


class CalUserPath(msgspec.Struct, frozen=True):
    user_id: Id


class CalSyncIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # for an external server (CALDAV_URL) only; the embedded server's account is made
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    calendar_url: Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^https?://")] | None = None


class CalSyncOut(msgspec.Struct, frozen=True):
    user_id: int
    enabled: bool
    server_url: str | None
    username: str | None
    calendar_url: str | None
    last_sync_at: datetime | None
    last_error: str | None
    rounds: int
    events: int
    pending_push: int


async def _sync_out(req: Req, user_id: int) -> CalSyncOut:
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT enabled, server_url, username, calendar_url, last_sync_at, last_error, rounds "
            "FROM cal_accounts WHERE user_id = %s",
            (user_id,),
        )
        row = await cur.fetchone()
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE NOT deleted), "
            "count(*) FILTER (WHERE local_rev > pushed_rev OR deleted) "
            "FROM cal_events WHERE owner_id = %s",
            (user_id,),
        )
        counts = await cur.fetchone()
    assert counts is not None
    if row is None:
        return CalSyncOut(user_id, False, None, None, None, None, None, 0, counts[0], counts[1])
    enabled, server_url, username, calendar_url, last_sync_at, last_error, rounds = row
    return CalSyncOut(
        user_id,
        enabled,
        server_url,
        username,
        calendar_url,
        last_sync_at,
        last_error,
        rounds,
        counts[0],
        counts[1],
    )


@routes.get(
    f"{API}/sync/{{user_id}}",
    access=Access.read(scope=user_scope),
    summary="A user's calendar sync settings and state (the password is never shown)",
)
async def get_sync(req: Req, path: CalUserPath) -> CalSyncOut:
    return await _sync_out(req, path.user_id)


@routes.put(
    f"{API}/sync/{{user_id}}",
    access=Access.write(scope=user_scope),
    summary="Opt in to two-way calendar sync (and start a first round)",
    description="With the embedded CalDAV server fieldmesh makes the account and its "
    "password; with CALDAV_URL give `username` and `password` (an app password) and "
    "optionally the `calendar_url` to sync with.",
    errors=(403,),
)
async def put_sync(req: Req, path: CalUserPath, body: CalSyncIn) -> CalSyncOut:
    _require_self(req.user, path.user_id)
    async with req.connection() as conn, conn.transaction():
        await _require_user(conn, path.user_id)
        await service.opt_in(
            conn,
            req.settings,
            path.user_id,
            username=body.username,
            password=body.password,
            calendar_url=body.calendar_url,
        )
        await enqueue_sync(conn, path.user_id)
    return await _sync_out(req, path.user_id)


@routes.delete(
    f"{API}/sync/{{user_id}}",
    access=Access.write(scope=user_scope),
    summary="Opt out of calendar sync (events already on the server stay there)",
    status=204,
    errors=(403,),
)
async def delete_sync(req: Req, path: CalUserPath) -> None:
    _require_self(req.user, path.user_id)
    async with req.connection() as conn:
        if not await service.opt_out(conn, path.user_id):
            raise NotFound(f"user {path.user_id} does not sync a calendar", field="user_id")


class CalQueued(msgspec.Struct, frozen=True):
    job_id: int


@routes.post(
    f"{API}/sync/{{user_id}}/run",
    access=Access.write(scope=user_scope),
    summary="Sync now (a round is queued; at most one per user waits)",
    status=202,
    errors=(409,),
)
async def run_sync(req: Req, path: CalUserPath) -> CalQueued:
    async with req.connection() as conn, conn.transaction():
        acct = await account(conn, path.user_id)
        if acct is None or not acct.enabled:
            raise Unprocessable(
                f"user {path.user_id} has not opted in to calendar sync", field="user_id"
            )
        return CalQueued(await enqueue_sync(conn, path.user_id))


# --------------------------------------------------------------------------- events


class CalOverrideIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    recurrence_id: datetime
    start: datetime | None = None
    end: datetime | None = None
    summary: Text | None = None
    cancelled: bool = False


class CalAttendeeIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class CalEventIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subject: Text
    start: datetime
    end: datetime
    tz: Tz = "UTC"
    type: Literal["meeting", "call", "task"] = "meeting"
    description: LongText | None = None
    location: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    rrule: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    exdates: Annotated[list[datetime], msgspec.Meta(max_length=500)] = []
    overrides: Annotated[list[CalOverrideIn], msgspec.Meta(max_length=500)] = []
    attendees: Annotated[list[CalAttendeeIn], msgspec.Meta(max_length=100)] = []
    account_id: Id | None = None
    contact_id: Id | None = None


class CalEventPath(msgspec.Struct, frozen=True):
    activity_id: Id


class CalAttendeeOut(msgspec.Struct, frozen=True):
    email: str
    name: str
    partstat: str
    role: str


class CalOverrideOut(msgspec.Struct, frozen=True):
    recurrence_id: datetime
    start: datetime
    end: datetime
    summary: str | None
    cancelled: bool


class CalItipOut(msgspec.Struct, frozen=True):
    id: int
    method: str
    direction: str
    recipient: str
    sequence: int
    created_at: datetime
    sent_at: datetime | None


class CalEventOut(msgspec.Struct, frozen=True):
    activity_id: int | None
    event_id: int
    uid: str
    kind: str
    owner_id: int
    summary: str
    start: datetime
    end: datetime
    tz: str
    rrule: str | None
    exdates: list[datetime]
    overrides: list[CalOverrideOut]
    status: str
    attendees: list[CalAttendeeOut]
    invitations: list[CalItipOut]
    synced: bool


def _utc_aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise Unprocessable(f"{field}: give a time with its offset (e.g. ...Z)", field=field)
    return value


def _overrides(items: list[CalOverrideIn], duration: timedelta) -> tuple[Override, ...]:
    out = []
    for o in items:
        rid = _utc_aware(o.recurrence_id, "overrides")
        start = _utc_aware(o.start, "overrides") if o.start else rid
        end = _utc_aware(o.end, "overrides") if o.end else start + duration
        out.append(Override(rid, start, end, o.summary, o.cancelled))
    return tuple(out)


async def _event_out(req: Req, activity_id: int) -> CalEventOut:
    async with req.connection() as conn:
        rows = await load_events(conn, "activity_id = %s AND NOT deleted", (activity_id,))
        if not rows:
            raise NotFound(f"activity {activity_id} has no calendar event", field="activity_id")
        row, ev = rows[0]
        msgs = await itip.for_activity(conn, activity_id)
    return CalEventOut(
        activity_id=row["activity_id"],
        event_id=row["id"],
        uid=ev.uid,
        kind=row["kind"],
        owner_id=row["owner_id"],
        summary=ev.summary,
        start=ev.start,
        end=ev.end,
        tz=ev.tz,
        rrule=ev.rrule,
        exdates=list(ev.exdates),
        overrides=[
            CalOverrideOut(o.recurrence_id, o.start, o.end, o.summary, o.cancelled)
            for o in ev.overrides
        ],
        status=ev.status,
        attendees=[CalAttendeeOut(a.email, a.name, a.partstat, a.role) for a in ev.attendees],
        invitations=[
            CalItipOut(
                m.id, m.method, m.direction, m.recipient, m.sequence, m.created_at, m.sent_at
            )
            for m in msgs
        ],
        synced=row["local_rev"] <= row["pushed_rev"] and row["etag"] is not None,
    )


@routes.post(
    f"{API}/events",
    access=Access.write(unscoped="the activity is created with the caller's CRM access rules"),
    summary="Create a meeting, call or task with recurrence and attendees",
    description="An RFC 5545 `rrule` (e.g. FREQ=WEEKLY;BYDAY=MO), `exdates` (cancelled "
    "instances, by their original start) and `overrides` (moved instances) expand in `tz`. "
    "Attendees get an iTIP REQUEST (stored; sent by e-mail once e-mail sending exists).",
    status=201,
    errors=(403,),
)
async def create_event(req: Req, body: CalEventIn) -> Reply[CalEventOut]:
    start, end = _utc_aware(body.start, "start"), _utc_aware(body.end, "end")
    inp = service.EventInput(
        subject=body.subject,
        start=start,
        end=end,
        tz=body.tz,
        type=body.type,
        description=body.description,
        location=body.location,
        rrule=body.rrule,
        exdates=tuple(_utc_aware(d, "exdates") for d in body.exdates),
        overrides=_overrides(body.overrides, end - start),
        attendees=tuple(Attendee(a.email.lower(), a.name) for a in body.attendees),
        account_id=body.account_id,
        contact_id=body.contact_id,
    )
    async with req.connection() as conn, conn.transaction():
        activity_id, _ = await service.create_event(conn, req.user, req.settings.tenant, inp)
    return Reply(await _event_out(req, activity_id), status=201)


@routes.get(
    f"{API}/events/{{activity_id}}",
    access=Access.read(scope=activity_scope),
    summary="An activity's calendar event: recurrence, attendees with RSVP, invitations",
)
async def get_event(req: Req, path: CalEventPath) -> CalEventOut:
    return await _event_out(req, path.activity_id)


class CalRecurrenceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rrule: Annotated[str, msgspec.Meta(max_length=500)] | None
    exdates: Annotated[list[datetime], msgspec.Meta(max_length=500)] = []
    overrides: Annotated[list[CalOverrideIn], msgspec.Meta(max_length=500)] = []


@routes.put(
    f"{API}/events/{{activity_id}}/recurrence",
    access=Access.write(scope=activity_scope),
    summary="Set an event's recurrence, cancelled and moved instances (rrule null: once)",
    errors=(403,),
)
async def put_recurrence(req: Req, path: CalEventPath, body: CalRecurrenceIn) -> CalEventOut:
    async with req.connection() as conn, conn.transaction():
        await crm_store.get_record(conn, ACTIVITIES, req.user, path.activity_id)
        req.user.require_write()
        row, ev = await service.event_of_activity(conn, path.activity_id)
        await service.change_recurrence(
            conn,
            row["id"],
            rrule=body.rrule,
            exdates=tuple(_utc_aware(d, "exdates") for d in body.exdates),
            overrides=_overrides(body.overrides, ev.end - ev.start),
        )
    return await _event_out(req, path.activity_id)


class CalAttendeesIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attendees: Annotated[list[CalAttendeeIn], msgspec.Meta(max_length=100)]


@routes.put(
    f"{API}/events/{{activity_id}}/attendees",
    access=Access.write(scope=activity_scope),
    summary="Set an event's attendees (each gets an iTIP REQUEST; RSVPs come back by sync)",
    errors=(403,),
)
async def put_attendees(req: Req, path: CalEventPath, body: CalAttendeesIn) -> CalEventOut:
    req.user.require_write()
    async with req.connection() as conn, conn.transaction():
        row, _ = await service.event_of_activity(conn, path.activity_id)
        await service.set_attendees(
            conn,
            row["id"],
            tuple(Attendee(a.email.lower(), a.name) for a in body.attendees),
            req.user.email.lower(),
        )
    return await _event_out(req, path.activity_id)


# --------------------------------------------------------------------------- occurrences


class CalOccurrenceQuery(msgspec.Struct, frozen=True):
    user_id: Id
    start: datetime
    end: datetime
    tz: Tz = "UTC"  # the viewer's zone, for `local_start`


class CalOccurrenceOut(msgspec.Struct, frozen=True):
    event_id: int
    activity_id: int | None
    title: str
    start: datetime
    end: datetime
    local_start: str
    event_tz: str
    moved: bool
    recurring: bool


class CalOccurrencePage(msgspec.Struct, frozen=True):
    items: list[CalOccurrenceOut]


@routes.get(
    f"{API}/occurrences",
    access=Access.read(unscoped="the user_id is checked: the caller's team, or admin/viewer"),
    summary="A user's calendar in a window, recurring events expanded (times UTC and in `tz`)",
)
async def get_occurrences(req: Req, query: CalOccurrenceQuery) -> CalOccurrencePage:
    p = req.user
    if not (p.sees_everything or query.user_id in p.team_user_ids):
        raise NotFound(f"user {query.user_id} has no calendar you may see", field="user_id")
    start, end = _utc_aware(query.start, "start"), _utc_aware(query.end, "end")
    if end <= start or end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise Unprocessable(f"the window must be 1 s to {MAX_WINDOW_DAYS} days", field="end")
    try:
        viewer = zone(query.tz)
    except CalendarError as exc:
        raise Unprocessable(str(exc), field="tz") from None
    out: list[CalOccurrenceOut] = []
    async with req.connection() as conn:
        rows = await load_events(
            conn,
            "owner_id = %s AND NOT deleted AND start_at < %s AND (end_at >= %s OR rrule IS NOT NULL)",
            (query.user_id, end, start),
            limit=5000,
        )
    for row, ev in rows:
        try:
            instances = expand(ev, start, end)
        except CalendarError:
            continue
        for i in instances[:MAX_INSTANCES]:
            out.append(
                CalOccurrenceOut(
                    row["id"],
                    row["activity_id"],
                    i.summary or ev.summary,
                    i.start,
                    i.end,
                    i.start.astimezone(viewer).isoformat(),
                    ev.tz,
                    i.moved,
                    ev.rrule is not None,
                )
            )
    out.sort(key=lambda o: (o.start, o.event_id))
    return CalOccurrencePage(out)


# --------------------------------------------------------------------------- feeds


class CalFeedIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scope: Literal["user", "team"] = "user"
    user_id: Id | None = None  # whose calendar (default: the caller)
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class CalFeedOut(msgspec.Struct, frozen=True):
    id: int
    scope: str
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    url: str | None = None  # only when created: the token is not kept


class CalFeedPage(msgspec.Struct, frozen=True):
    items: list[CalFeedOut]


class CalFeedPath(msgspec.Struct, frozen=True):
    feed_id: Id


class CalTokenPath(msgspec.Struct, frozen=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def _feed_out(f: feeds.Feed, url: str | None = None) -> CalFeedOut:
    return CalFeedOut(f.id, f.scope, f.user_id, f.name, f.prefix, f.created_at, f.revoked_at, url)


def feed_path(token: str) -> str:
    return f"/cal/feeds/{token}.ics"


@routes.post(
    f"{API}/feeds",
    access=Access.write(unscoped="the user_id is checked: the caller, or their team for managers"),
    summary="Make a secret ICS subscription URL (shown once) for a user's or a team's calendar",
    status=201,
    errors=(403, 404),  # 404: a user_id that is not an active user the caller may see
)
async def create_feed(req: Req, body: CalFeedIn) -> Reply[CalFeedOut]:
    p = req.user
    user_id = body.user_id or p.user_id
    if not _may_see_user(p, user_id):
        raise NotFound(f"user {user_id} has no calendar you may see", field="user_id")
    if body.scope == "team" and user_id == p.user_id and p.role not in ("manager", "admin"):
        raise Forbidden("a team feed is for managers")
    async with req.connection() as conn:
        await _require_user(conn, user_id)
        feed, token = await feeds.create_feed(conn, body.scope, user_id, p.user_id, body.name)
    return Reply(_feed_out(feed, feed_path(token)), status=201)


@routes.get(
    f"{API}/feeds",
    access=Access.read(unscoped="only the caller's own feeds, their team's for managers"),
    summary="The feeds the caller may manage (URLs are not shown again)",
)
async def list_feeds(req: Req) -> CalFeedPage:
    p = req.user
    async with req.connection() as conn:
        items = await feeds.list_feeds(conn, None if p.is_admin else list(p.team_user_ids))
    return CalFeedPage([_feed_out(f) for f in items])


@routes.delete(
    f"{API}/feeds/{{feed_id}}",
    access=Access.write(unscoped="the feed is checked: the caller's own or their team's"),
    summary="Revoke a feed: its URL answers 404 from now on",
    status=204,
)
async def revoke_feed(req: Req, path: CalFeedPath) -> None:
    async with req.connection() as conn:
        feed = await feeds.get_feed(conn, path.feed_id)
        if feed is None or not _may_see_user(req.user, feed.user_id):
            raise NotFound(f"no feed {path.feed_id}", field="feed_id")
        await feeds.revoke(conn, feed.id)


@routes.get(
    "/cal/feeds/{token}.ics",
    access=Access.public(
        "calendar apps subscribe without a login: the URL's secret token "
        "is the credential, revocable; unknown or revoked tokens are 404"
    ),
    summary="An ICS subscription feed",
    content_type="text/calendar",
)
async def get_feed(req: Req, path: CalTokenPath) -> web.Response:
    async with req.connection() as conn:
        feed = await feeds.resolve(conn, path.token)
        if feed is None:
            raise NotFound("no such calendar feed")
        text = await feeds.feed_ics(conn, feed, req.settings.tenant)
    return web.Response(
        text=text,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )


# --------------------------------------------------------------------------- import


class CalImportProblemOut(msgspec.Struct, frozen=True):
    line: int
    uid: str | None
    message: str


class CalImportOut(msgspec.Struct, frozen=True):
    created: int
    updated: int
    problems: list[CalImportProblemOut]


class CalImportQuery(msgspec.Struct, frozen=True):
    tz: Tz = "UTC"  # the zone of floating times in the file


async def import_file(req: Req, query: CalImportQuery, body: bytes) -> CalImportOut:
    req.user.require_write()
    if not body:
        raise Unprocessable("the body must be the .ics file")
    try:
        zone(query.tz)
    except CalendarError as exc:
        raise Unprocessable(str(exc), field="tz") from None
    async with req.connection() as conn:
        res = await importer.import_ics(conn, req.user, body, query.tz)
    return CalImportOut(
        res.created,
        res.updated,
        [CalImportProblemOut(p.line, p.uid, p.message) for p in res.problems],
    )


routes.add(
    "POST",
    f"{API}/import",
    import_file,
    access=Access.write(unscoped="events become the caller's own activities"),
    summary="Import an .ics file into the caller's calendar",
    description=f"At most {importer.MAX_IMPORT_BYTES // 1024 // 1024} MB and "
    f"{importer.MAX_IMPORT_EVENTS} events; bad events are reported with their line and UID, "
    "the good ones are kept; events are keyed by UID (a second import updates them).",
    body=RawBody(("text/calendar",), "The iCalendar file, UTF-8"),
    response=CalImportOut,
    max_body_bytes=importer.MAX_IMPORT_BYTES,
    errors=(403,),
)


def setup(app: web.Application) -> None:
    hooks.install()  # the CRM's rules for the activities these routes write
    routes.mount(app)
