"""HTTP API of resources, bookings, meetings, working hours, the slot finder and the
calendar feed (calendars part B).

    GET|POST  /api/v1/calendar/resources            list / create (managers)
    POST      /api/v1/calendar/resources/{id}/capacity   grow the capacity (managers)
    GET|POST  /api/v1/calendar/bookings             list / book: 201, or 409 with the
                                                     booking in the way and alternatives
    PATCH     /api/v1/calendar/bookings/{id}         move or resize (409 the same way)
    DELETE    /api/v1/calendar/bookings/{id}         cancel
    POST      /api/v1/calendar/meetings             a meeting (CRM activity) + bookings + reminder
    PATCH     /api/v1/calendar/meetings/{activity_id}  move or resize (409 when busy)
    POST      /api/v1/calendar/slots                the slot finder
    GET|PUT   /api/v1/calendar/working-hours/{user_id}
    GET       /api/v1/calendar/events               busy items of users for the console

People: a caller may look at the calendars of users they may see: their team (a
manager's, recursively), users of the territories they see, and themselves; admins and
viewers everyone. Any other user id answers 404. Resources: see calendars/resources.py.
Limits: attendees <= 50, resources <= 20, a search window <= 12 weeks, durations 5 min to
12 h (bookings up to 31 days), results <= 50; times must carry a UTC offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import AsyncConnection

from calendars import bookings, busy, meetings, resources, travel
from calendars.bookings import Booking, BookingConflict
from calendars.meetings import MeetingConflict
from calendars.slots import Busy, Query, Slot, find_slots
from crm.access import may_see_account
from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Reply, Req, Routes
from kernel.principal import Principal

routes = Routes("calendar", "Resources, bookings, meetings, working hours and the slot finder")

MAX_ATTENDEES = 50
MAX_RESOURCES = 20
MAX_WINDOW = timedelta(weeks=12)
# Times a calendar may name: windows are computed from them (start + 2 weeks), which a
# year-9999 start overflows.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 12, 31, tzinfo=UTC)
MAX_FEED_WINDOW = timedelta(days=62)
MAX_BOOKING = timedelta(days=31)

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
When = Annotated[datetime, msgspec.Meta(tz=True)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300, pattern=r"\S")]
Zone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


# --------------------------------------------------------------------------- models


class CalResourceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]
    kind: Literal["room", "vehicle", "tool", "equipment"]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    territory_id: Id | None = None


class CalCapacityIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100)]


class CalResourceOut(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    capacity: int
    territory_id: int | None
    active: bool


class CalResourceList(msgspec.Struct, frozen=True):
    items: list[CalResourceOut]


class CalResourceQuery(msgspec.Struct, frozen=True):
    kind: Literal["room", "vehicle", "tool", "equipment"] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 200


class CalIdPath(msgspec.Struct, frozen=True):
    id: Id


class CalBookingIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    resource_id: Id
    start: When
    end: When
    title: Title
    user_id: Id | None = None
    activity_id: Id | None = None


class CalBookingMove(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: When
    end: When


class CalBookingOut(msgspec.Struct, frozen=True):
    id: int
    resource_id: int
    unit: int
    start: datetime
    end: datetime
    title: str
    user_id: int | None
    activity_id: int | None
    status: str
    reschedules: int


class CalBookingList(msgspec.Struct, frozen=True):
    items: list[CalBookingOut]


class CalBookingQuery(msgspec.Struct, frozen=True):
    start: When
    end: When
    resource_ids: Annotated[list[Id], msgspec.Meta(max_length=MAX_RESOURCES * 5)] = []
    limit: Annotated[int, msgspec.Meta(ge=1, le=2000)] = 500


class CalSlotOut(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    score: float
    reasons: list[str]
    travel_s: float


class CalErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str | None


class CalConflictItem(msgspec.Struct, frozen=True):
    kind: str
    ref: str
    title: str
    start: datetime
    end: datetime
    booking_id: int | None = None
    resource_id: int | None = None


class CalOtherResourceOut(msgspec.Struct, frozen=True):
    id: int
    name: str


class CalConflictOut(msgspec.Struct, frozen=True):
    """The 409 answer: the error, what is in the way, and where it would fit instead."""

    error: CalErrorBody
    conflict: CalConflictItem | None
    alternatives: list[CalSlotOut]
    other_resources: list[CalOtherResourceOut]


class CalSlotRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attendees: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_ATTENDEES)]
    duration_min: Annotated[int, msgspec.Meta(ge=5, le=720)]
    start: When | None = None
    end: When | None = None
    resources: Annotated[list[Id], msgspec.Meta(max_length=MAX_RESOURCES)] = []
    account_id: Id | None = None  # an on-site meeting at this account's location
    step_min: Annotated[int, msgspec.Meta(ge=5, le=120)] = 15
    mode: Literal["earliest", "best"] = "best"
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10


class CalSlotList(msgspec.Struct, frozen=True):
    items: list[CalSlotOut]
    start: datetime
    end: datetime
    on_site: bool


class CalWorkDayIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weekday: Annotated[int, msgspec.Meta(ge=0, le=6)]
    start: HHMM
    end: HHMM


class CalWorkingHoursIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tz: Zone
    hours: Annotated[list[CalWorkDayIn], msgspec.Meta(max_length=21)]


class CalWorkingHoursOut(msgspec.Struct, frozen=True):
    user_id: int
    tz: str
    hours: list[CalWorkDayIn]
    default: bool


class BookingUserPath(msgspec.Struct, frozen=True):
    user_id: Id


class CalMeetingIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    subject: Title
    start: When
    end: When
    tz: Zone = "UTC"
    owner_id: Id | None = None
    account_id: Id | None = None
    contact_id: Id | None = None
    resource_ids: Annotated[list[Id], msgspec.Meta(max_length=10)] = []
    reminder_min: Annotated[int, msgspec.Meta(ge=0, le=40320)] | None = None
    allow_overlap: bool = False


class CalMeetingMove(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: When
    end: When
    allow_overlap: bool = False


class CalMeetingOut(msgspec.Struct, frozen=True):
    activity_id: int
    subject: str
    start: datetime
    end: datetime
    owner_id: int | None
    bookings: list[CalBookingOut]


class CalActivityPath(msgspec.Struct, frozen=True):
    activity_id: Id


class CalEventsQuery(msgspec.Struct, frozen=True):
    start: When
    end: When
    user_ids: Annotated[list[Id], msgspec.Meta(max_length=MAX_ATTENDEES)] = []


class CalendarItemOut(msgspec.Struct, frozen=True):
    user_id: int
    kind: str
    ref: str
    title: str
    start: datetime
    end: datetime
    editable: bool


class CalEventList(msgspec.Struct, frozen=True):
    items: list[CalendarItemOut]


# --------------------------------------------------------------------------- helpers


def _plausible(t: datetime | None, name: str) -> None:
    if t is not None and not EARLIEST <= t <= LATEST:
        raise Unprocessable(
            f"{name} must be between {EARLIEST.date()} and {LATEST.date()}",
            field=name,
            code="implausible",
        )


def _window(start: datetime, end: datetime, limit: timedelta, what: str = "start") -> None:
    _plausible(start, "start")
    _plausible(end, "end")
    if end <= start:
        raise Unprocessable("end must be after start", field="end")
    if end - start > limit:
        raise Unprocessable(f"the window is longer than {limit.days} days", field="end")


def slot_out(s: Slot) -> CalSlotOut:
    return CalSlotOut(s.start, s.end, s.score, list(s.reasons), s.travel_s)


def booking_out(b: Booking) -> CalBookingOut:
    return CalBookingOut(
        b.id, b.resource_id, b.unit, b.start, b.end, b.title, b.user_id, b.activity_id,
        b.status, b.reschedules,
    )  # fmt: skip


def _conflict_reply(exc: BookingConflict | MeetingConflict) -> Reply[CalConflictOut]:
    if isinstance(exc, BookingConflict):
        b = exc.conflicting
        item = (
            None
            if b is None
            else CalConflictItem(
                "booking", f"booking:{b.id}", b.title, b.start, b.end, b.id, b.resource_id
            )
        )
        body = CalConflictOut(
            CalErrorBody("conflict", exc.message, "start"),
            item,
            [slot_out(s) for s in exc.alternatives],
            [CalOtherResourceOut(o.id, o.name) for o in exc.other_resources],
        )
    else:
        c: Busy = exc.conflicting
        body = CalConflictOut(
            CalErrorBody("conflict", exc.message, "start"),
            CalConflictItem(c.kind, c.ref, c.title, c.start, c.end),
            [slot_out(s) for s in exc.alternatives],
            [],
        )
    return Reply(body, status=409)


async def visible_user_ids(conn: AsyncConnection[Any], p: Principal, ids: list[int]) -> None:
    """404 naming the first user the caller may not look at (or that does not exist)."""
    cur = await conn.execute(
        "SELECT id FROM users WHERE id = ANY(%s) AND (%s OR id = ANY(%s) OR territory_id = ANY(%s))",
        (ids, p.sees_everything, list(p.team_user_ids), list(p.team_territory_ids)),
    )
    seen = {int(r[0]) for r in await cur.fetchall()}
    for uid in ids:
        if uid not in seen:
            raise NotFound(f"no user {uid}", field="user_id")


async def _resource(conn: AsyncConnection[Any], p: Principal, rid: int) -> resources.Resource:
    res = await resources.get(conn, rid)
    if res is None or not resources.visible(p, res):
        raise NotFound(f"no resource {rid}", field="resource_id")
    return res


async def _booking(conn: AsyncConnection[Any], p: Principal, bid: int) -> Booking:
    b = await bookings.get(conn, bid)
    if b is None or b.status != "booked":
        raise NotFound(f"no booking {bid}", field="id")
    await _resource(conn, p, b.resource_id)
    return b


def _may_write_for(p: Principal, user_id: int | None) -> None:
    if user_id is not None and not (p.is_admin or user_id in p.team_user_ids):
        raise NotFound(f"no user {user_id}", field="user_id")


# --------------------------------------------------------------------------- resources


@routes.get(
    "/api/v1/calendar/resources",
    access=Access.read(unscoped="the list holds shared resources and those of visible territories"),
    summary="Bookable resources",
)
async def list_resources(req: Req, query: CalResourceQuery) -> CalResourceList:
    async with req.connection() as conn:
        rows = await resources.listed(conn, req.user, query.kind, query.limit)
    return CalResourceList([_res(r) for r in rows])


def _res(r: resources.Resource) -> CalResourceOut:
    return CalResourceOut(r.id, r.name, r.kind, r.capacity, r.territory_id, r.active)


@routes.post(
    "/api/v1/calendar/resources",
    access=Access.managers(unscoped="the handler checks the territory is the caller's team's"),
    summary="Create a resource (a room, vehicle, tool or equipment) with its capacity",
    status=201,
    errors=(409,),
)
async def create_resource(req: Req, body: CalResourceIn) -> CalResourceOut:
    p = req.user
    if body.territory_id is not None and not (
        p.sees_everything or body.territory_id in p.team_territory_ids
    ):
        raise Unprocessable(f"no territory {body.territory_id}", field="territory_id")
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM cal_resources WHERE lower(name) = lower(%s)", (body.name,)
        )
        if await cur.fetchone() is not None:
            from kernel.errors import Conflict

            raise Conflict(f"a resource named {body.name!r} exists", field="name")
        if body.territory_id is not None:
            t = await conn.execute("SELECT 1 FROM territories WHERE id = %s", (body.territory_id,))
            if await t.fetchone() is None:
                raise Unprocessable(f"no territory {body.territory_id}", field="territory_id")
        r = await resources.create(
            conn,
            name=body.name,
            kind=body.kind,
            capacity=body.capacity,
            territory_id=body.territory_id,
            created_by=p.user_id,
        )
    return _res(r)


@routes.post(
    "/api/v1/calendar/resources/{id}/capacity",
    access=Access.managers(unscoped="the handler checks the resource is visible"),
    summary="Raise a resource's capacity (it never shrinks: see calendars/resources.py)",
    errors=(409,),
)
async def grow_resource(req: Req, path: CalIdPath, body: CalCapacityIn) -> CalResourceOut:
    async with req.connection() as conn:
        r = await _resource(conn, req.user, path.id)
        if body.capacity < r.capacity:
            from kernel.errors import Conflict

            raise Conflict(
                "capacity only grows; deactivate and replace the resource", field="capacity"
            )
        grown = await resources.grow(conn, path.id, body.capacity)
    assert grown is not None
    return _res(grown)


# --------------------------------------------------------------------------- bookings


@routes.get(
    "/api/v1/calendar/bookings",
    access=Access.read(unscoped="only bookings of resources the caller may see"),
    summary="Bookings overlapping a window (the resource view)",
)
async def list_bookings(req: Req, query: CalBookingQuery) -> CalBookingList:
    _window(query.start, query.end, MAX_FEED_WINDOW)
    async with req.connection() as conn:
        vis = [r.id for r in await resources.listed(conn, req.user, None, 10_000)]
        ids = [r for r in query.resource_ids if r in set(vis)] if query.resource_ids else vis
        rows = await bookings.listed(conn, ids, query.start, query.end, query.limit)
    return CalBookingList([booking_out(b) for b in rows])


@routes.post(
    "/api/v1/calendar/bookings",
    access=Access.write(unscoped="the handler checks the resource and the user are visible"),
    summary="Book a resource: 201, or 409 with the booking in the way and free alternatives",
    status=201,
    errors=(409,),
    response=CalBookingOut,
)
async def create_booking(req: Req, body: CalBookingIn) -> Reply[Any]:
    _window(body.start, body.end, MAX_BOOKING)
    p = req.user
    _may_write_for(p, body.user_id)
    async with req.connection() as conn:
        res = await _resource(conn, p, body.resource_id)
        if not res.active:
            raise Unprocessable("the resource is not active", field="resource_id")
        if body.activity_id is not None:
            cur = await conn.execute(
                "SELECT account_id, owner_id FROM activities WHERE id = %s", (body.activity_id,)
            )
            row = await cur.fetchone()
            if row is None or not (
                row[1] in p.team_user_ids
                or (row[0] is not None and await may_see_account(conn, p, int(row[0])))
                or p.sees_everything
            ):
                raise NotFound(f"no activity {body.activity_id}", field="activity_id")
        try:
            b = await bookings.book(
                conn,
                resource_id=body.resource_id,
                start=body.start,
                end=body.end,
                title=body.title,
                user_id=body.user_id if body.user_id is not None else p.user_id,
                activity_id=body.activity_id,
                created_by=p.user_id,
            )
        except BookingConflict as exc:
            return _conflict_reply(exc)
    return Reply(booking_out(b), status=201)


@routes.patch(
    "/api/v1/calendar/bookings/{id}",
    access=Access.write(unscoped="the handler checks the booking's resource is visible"),
    summary="Move or resize a booking: 200, or 409 with what is in the way",
    errors=(409,),
    response=CalBookingOut,
)
async def move_booking(req: Req, path: CalIdPath, body: CalBookingMove) -> Reply[Any]:
    _window(body.start, body.end, MAX_BOOKING)
    async with req.connection() as conn:
        b = await _booking(conn, req.user, path.id)
        _may_write_for(req.user, b.user_id)
        try:
            moved = await bookings.move(conn, b, body.start, body.end)
        except BookingConflict as exc:
            return _conflict_reply(exc)
    return Reply(booking_out(moved))


@routes.delete(
    "/api/v1/calendar/bookings/{id}",
    access=Access.write(unscoped="the handler checks the booking's resource is visible"),
    summary="Cancel a booking",
    status=204,
)
async def cancel_booking(req: Req, path: CalIdPath) -> Reply[None]:
    async with req.connection() as conn:
        b = await _booking(conn, req.user, path.id)
        _may_write_for(req.user, b.user_id)
        await bookings.cancel(conn, path.id)
    return Reply(None, status=204)


# --------------------------------------------------------------------------- meetings


def _meeting_out(act: dict[str, Any], made: list[Booking]) -> CalMeetingOut:
    return CalMeetingOut(
        int(act["id"]),
        str(act["subject"]),
        act["start_at"],
        act["end_at"],
        act.get("owner_id"),
        [booking_out(b) for b in made],
    )


@routes.post(
    "/api/v1/calendar/meetings",
    access=Access.write(unscoped="the CRM's rules scope the activity; resources are checked"),
    summary="Create a meeting (a CRM activity) with its resource bookings; 409 when busy",
    status=201,
    errors=(409,),
    response=CalMeetingOut,
)
async def create_meeting(req: Req, body: CalMeetingIn) -> Reply[Any]:
    _window(body.start, body.end, timedelta(hours=24))
    if not busy.valid_zone(body.tz):
        raise Unprocessable(f"unknown time zone {body.tz!r}", field="tz")
    p = req.user
    owner = body.owner_id or p.user_id
    _may_write_for(p, owner)
    async with req.connection() as conn:
        for rid in body.resource_ids:
            await _resource(conn, p, rid)
        try:
            async with conn.transaction():
                act, made = await meetings.create_meeting(
                    conn,
                    p,
                    subject=body.subject,
                    start=body.start,
                    end=body.end,
                    tz=body.tz,
                    owner_id=owner,
                    account_id=body.account_id,
                    contact_id=body.contact_id,
                    resource_ids=tuple(body.resource_ids),
                    reminder_min=body.reminder_min,
                    allow_overlap=body.allow_overlap,
                )
        except (BookingConflict, MeetingConflict) as exc:
            return _conflict_reply(exc)
    return Reply(_meeting_out(act, made), status=201)


@routes.patch(
    "/api/v1/calendar/meetings/{activity_id}",
    access=Access.write(unscoped="the CRM's scope of the activity applies (404 when not visible)"),
    summary="Move or resize a meeting and its bookings: 200, or 409 with what is in the way",
    errors=(409,),
    response=CalMeetingOut,
)
async def move_meeting(req: Req, path: CalActivityPath, body: CalMeetingMove) -> Reply[Any]:
    _window(body.start, body.end, timedelta(hours=24))
    async with req.connection() as conn:
        try:
            async with conn.transaction():
                act, moved = await meetings.move_meeting(
                    conn, req.user, path.activity_id, body.start, body.end, body.allow_overlap
                )
        except (BookingConflict, MeetingConflict) as exc:
            return _conflict_reply(exc)
    return Reply(_meeting_out(act, moved))


# --------------------------------------------------------------------------- slot finder


async def search_slots(
    conn: AsyncConnection[Any],
    user_ids: list[int],
    resource_ids: list[int],
    start: datetime,
    end: datetime,
    duration: timedelta,
    *,
    step: timedelta = timedelta(minutes=15),
    site: tuple[float, float] | None = None,
    mode: Literal["earliest", "best"] = "best",
    limit: int = 10,
    now: datetime | None = None,
) -> list[Slot]:
    """The slot finder over the database (the API, the booking page and the benchmark)."""
    people = await busy.attendees(conn, user_ids, start, end)
    if len(people) != len(set(user_ids)):
        missing = set(user_ids) - {a.user_id for a in people}
        raise NotFound(f"no active user {min(missing)}", field="attendees")
    loads = await resources.loads(conn, resource_ids, start, end)
    q = Query(
        tuple(people), tuple(loads), start, end, duration, step, site, mode, limit,
        now or datetime.now(UTC),
    )  # fmt: skip
    return find_slots(q, travel.for_query(site, people) if site is not None else None)


@routes.post(
    "/api/v1/calendar/slots",
    access=Access.read(unscoped="the handler checks every attendee, resource and account"),
    summary="Free slots for attendees and resources, within working hours, with travel",
)
async def find(req: Req, body: CalSlotRequest) -> CalSlotList:
    now = datetime.now(UTC)
    _plausible(body.start, "start")
    _plausible(body.end, "end")
    start = body.start or now
    end = body.end or start + timedelta(weeks=2)
    _window(start, end, MAX_WINDOW)
    p = req.user
    users = list(dict.fromkeys(body.attendees))
    async with req.connection() as conn:
        await visible_user_ids(conn, p, users)
        for rid in body.resources:
            await _resource(conn, p, rid)
        site = None
        if body.account_id is not None:
            if not await may_see_account(conn, p, body.account_id):
                raise NotFound(f"no account {body.account_id}", field="account_id")
            cur = await conn.execute(
                "SELECT ST_X(location::geometry), ST_Y(location::geometry) FROM accounts WHERE id = %s",
                (body.account_id,),
            )
            row = await cur.fetchone()
            if row is None or row[0] is None:
                raise Unprocessable("the account has no location", field="account_id")
            site = (float(row[0]), float(row[1]))
        slots = await search_slots(
            conn,
            users,
            list(dict.fromkeys(body.resources)),
            start,
            end,
            timedelta(minutes=body.duration_min),
            step=timedelta(minutes=body.step_min),
            site=site,
            mode=body.mode,
            limit=body.limit,
            now=now,
        )
    return CalSlotList([slot_out(s) for s in slots], start, end, site is not None)


# --------------------------------------------------------------------------- working hours


@routes.get(
    "/api/v1/calendar/working-hours/{user_id}",
    access=Access.read(unscoped="the handler checks the user is one the caller may see"),
    summary="A user's working week in their time zone",
)
async def get_hours(req: Req, path: BookingUserPath) -> CalWorkingHoursOut:
    async with req.connection() as conn:
        await visible_user_ids(conn, req.user, [path.user_id])
        cur = await conn.execute(
            "SELECT coalesce(w.tz, u.timezone), w.hours, u.shift_start, u.shift_end"
            " FROM users u LEFT JOIN cal_working_hours w ON w.user_id = u.id WHERE u.id = %s",
            (path.user_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    tz, hours, s, e = row
    if hours is None:
        end = "24:00" if e <= s else e.strftime("%H:%M")
        days = [CalWorkDayIn(d, s.strftime("%H:%M"), end) for d in range(5)]
        return CalWorkingHoursOut(path.user_id, tz, days, True)
    return CalWorkingHoursOut(path.user_id, tz, msgspec.convert(hours, list[CalWorkDayIn]), False)


@routes.put(
    "/api/v1/calendar/working-hours/{user_id}",
    access=Access.write(unscoped="the user themself, their managers, or an admin"),
    summary="Set a user's working week (local times in an IANA zone)",
)
async def put_hours(req: Req, path: BookingUserPath, body: CalWorkingHoursIn) -> CalWorkingHoursOut:
    if not busy.valid_zone(body.tz):
        raise Unprocessable(f"unknown time zone {body.tz!r}", field="tz")
    for i, d in enumerate(body.hours):
        if d.end != "24:00" and d.end <= d.start:
            raise Unprocessable("a working day ends after it starts", field=f"hours.{i}.end")
    _may_write_for(req.user, path.user_id)
    async with req.connection() as conn:
        await visible_user_ids(conn, req.user, [path.user_id])
        await conn.execute(
            "INSERT INTO cal_working_hours (user_id, tz, hours) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET tz = EXCLUDED.tz, hours = EXCLUDED.hours,"
            " updated_at = now()",
            (path.user_id, body.tz, msgspec.json.encode(body.hours).decode()),
        )
    return CalWorkingHoursOut(path.user_id, body.tz, list(body.hours), False)


# --------------------------------------------------------------------------- calendar feed


@routes.get(
    "/api/v1/calendar/events",
    access=Access.read(unscoped="the handler checks every user is one the caller may see"),
    summary="Users' busy items (meetings, visits, driving, work orders, bookings) in a window",
)
async def events(req: Req, query: CalEventsQuery) -> CalEventList:
    _window(query.start, query.end, MAX_FEED_WINDOW)
    p = req.user
    users = list(dict.fromkeys(query.user_ids or [p.user_id]))
    async with req.connection() as conn:
        await visible_user_ids(conn, p, users)
        by_user = await busy.busy_by_user(conn, users, query.start, query.end)
    out = [
        CalendarItemOut(uid, b.kind, b.ref, b.title, b.start, b.end, _editable(p, uid, b))
        for uid, items in by_user.items()
        for b in sorted(items, key=lambda b: (b.start, b.ref))
    ]
    return CalEventList(out)


def _editable(p: Principal, uid: int, b: Busy) -> bool:
    return (
        p.can_write
        and b.kind in ("meeting", "call", "task", "booking")
        and (p.is_admin or uid in p.team_user_ids)
    )


def setup(app: web.Application) -> None:
    from calendars import analytics, public_routes, reminders

    routes.mount(app)
    reminders.routes.mount(app)
    public_routes.setup(app)
    analytics.routes.mount(app)
