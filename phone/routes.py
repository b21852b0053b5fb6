"""HTTP API of the rep's phone: register this phone as a field device and get its broker
connection (GPS goes over MQTT, see phone/gps.py), the day's stops, attachments, reports.

Every route acts on the caller's own phones, stops and records: another user's phone
answers 404; records go through the CRM's scope rules (crm.access)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from aiohttp import web

from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, RawBody, Reply, Req, Routes
from kernel.web import SETTINGS
from ledger.store import receipt_for_async
from ledger.verify import b64url_decode
from phone import analytics, attachments, dayrepo, devices, reports, verify_routes
from phone.day import DayStop
from phone.gps import POLICY, gps_topic, receipt_topic, status_topic
from phone.media import MAX_UPLOAD_BYTES, MediaError
from phone.report_mail import EngageReportMailer
from phone.verify_routes import verify_path

routes = Routes("phone", "The rep's phone as a field device")

_OWN_PHONE = "a user registers and connects only their own phones (every query filters by them)"

DeviceId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]


B64Url = Annotated[
    str, msgspec.Meta(min_length=1, max_length=400, pattern=r"^[A-Za-z0-9_-]+={0,2}$")
]


class PhoneIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    # the phone's own signing key (WebCrypto ECDSA P-256, raw uncompressed point, base64url)
    public_key: B64Url | None = None


def _p256(text: str | None) -> bytes | None:
    if text is None:
        return None
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        raw = b64url_decode(text)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise Unprocessable(
            "public_key: not a P-256 public point (raw, base64url)", field="public_key"
        ) from None
    if len(raw) != 65:
        raise Unprocessable("public_key: the uncompressed point (65 bytes)", field="public_key")
    return raw


class PhonePath(msgspec.Struct, frozen=True):
    device_id: DeviceId


class MqttConnection(msgspec.Struct, frozen=True):
    url: str | None  # ws(s)://...; None: ws://<the page's host>:<port>
    port: int
    client_id: str
    username: str
    password: str
    gps_topic: str
    receipt_topic: str
    status_topic: str


class PhoneConnection(msgspec.Struct, frozen=True):
    device_id: str
    label: str
    mqtt: MqttConnection
    gps: dict[str, Any]
    shift_start: time | None
    shift_end: time | None
    # the rep's IANA zone: the shift hours are wall-clock times there, not on the phone
    timezone: str


async def _connection(req: Req, phone: devices.Phone) -> PhoneConnection:
    settings = req.settings
    password = await devices.broker_password(settings, phone.device_id)
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT shift_start, shift_end, timezone FROM users WHERE id = %s",
            (phone.user_id,),
        )
        row = await cur.fetchone()
    t = settings.tenant
    mqtt = MqttConnection(
        settings.mqtt_ws_url,
        settings.mqtt_ws_listen_port,
        phone.device_id,
        phone.device_id,
        password,
        gps_topic(t, phone.device_id),
        receipt_topic(t, phone.device_id),
        status_topic(t, phone.device_id),
    )
    return PhoneConnection(
        phone.device_id,
        phone.label,
        mqtt,
        POLICY.as_json(),
        row[0] if row else None,
        row[1] if row else None,
        row[2] if row and row[2] else "UTC",
    )


@routes.post(
    "/api/v1/phone/devices",
    access=Access.write(unscoped=_OWN_PHONE),
    summary="Register this phone as the caller's field device; its broker connection",
    description="Creates a phone device bound to the caller (its geofence check-ins are the "
    "caller's visits) with its own broker account, which may publish only to its own topics.",
    status=201,
    errors=(503,),
)
async def register_phone(req: Req, body: PhoneIn) -> PhoneConnection:
    key = _p256(body.public_key)
    async with req.connection() as conn, conn.transaction():
        phone = await devices.register(conn, req.settings, req.user.user_id, body.label)
        if key is not None:
            await conn.execute(
                "UPDATE phone_devices SET public_key = %s WHERE device_id = %s",
                (key, phone.device_id),
            )
    return await _connection(req, phone)


@routes.get(
    "/api/v1/phone/devices/{device_id}/connection",
    access=Access.write(unscoped=_OWN_PHONE),
    summary="The broker connection of one of the caller's phones",
    errors=(404, 503),
)
async def phone_connection(req: Req, path: PhonePath) -> PhoneConnection:
    async with req.connection() as conn:
        phone = await devices.owned(conn, req.user.user_id, path.device_id)
    return await _connection(req, phone)


# --------------------------------------------------------------------------- the day

_OWN_DAY = "the caller's own route and work orders (every query filters by the caller)"
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
StopKey = Annotated[str, msgspec.Meta(pattern=r"^(wo|acct):[0-9]{1,18}$")]


class DayQuery(msgspec.Struct, frozen=True, rename={"day": "date"}):
    day: date | None = None  # default: today in the caller's zone (users.timezone)


class StopPath(msgspec.Struct, frozen=True):
    stop_key: StopKey


class Part(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Text
    qty: Annotated[float, msgspec.Meta(gt=0, le=10_000)] = 1
    sku: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class StopAccount(msgspec.Struct, frozen=True):
    id: int
    name: str
    address: str | None
    lon: float | None
    lat: float | None


class StopWorkOrder(msgspec.Struct, frozen=True):
    id: int
    title: str
    priority: str
    status: str
    type: str
    description: str | None
    estimated_duration_min: int


class ChecklistItem(msgspec.Struct, frozen=True):
    item: str
    done: bool


class StopOut(msgspec.Struct, frozen=True):
    key: str
    seq: int | None
    eta: datetime | None
    account: StopAccount
    work_order: StopWorkOrder | None
    checklist: list[ChecklistItem]
    parts: list[Part]
    completed: bool
    checkin_at: datetime | None
    checkout_at: datetime | None
    checkin_source: str | None
    time_spent_s: float | None
    navigate_url: str | None  # geo: URI for the phone's navigation app
    map_url: str | None


class PhoneDay(msgspec.Struct, frozen=True, rename={"day": "date"}):
    day: date
    plan_id: int | None
    stops: list[StopOut]


AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]


class StopUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    checkin_at: AwareTime | None = None
    checkout_at: AwareTime | None = None
    checklist: Annotated[dict[Text, bool], msgspec.Meta(max_length=100)] | None = None
    parts: Annotated[list[Part], msgspec.Meta(max_length=100)] | None = None
    completed: bool | None = None


def _stop_out(s: DayStop) -> StopOut:
    x = s.extra
    acc = StopAccount(**x["account"])
    nav = mapu = None
    if acc.lon is not None and acc.lat is not None:
        nav = f"geo:{acc.lat:.6f},{acc.lon:.6f}?q={acc.lat:.6f},{acc.lon:.6f}"
        mapu = f"https://www.openstreetmap.org/directions?to={acc.lat:.6f}%2C{acc.lon:.6f}"
    cin, cout = x["checkin_at"], x["checkout_at"]
    spent = (cout - cin).total_seconds() if cin and cout and cout >= cin else None
    return StopOut(
        s.key,
        s.seq,
        s.eta,
        acc,
        msgspec.convert(x["work_order"], StopWorkOrder) if x["work_order"] else None,
        [ChecklistItem(**c) for c in x["checklist"]],
        msgspec.convert(x["parts"], list[Part]),
        x["completed"],
        cin,
        cout,
        x["checkin_source"],
        spent,
        nav,
        mapu,
    )


@routes.get(
    "/api/v1/phone/day",
    access=Access.read(unscoped=_OWN_DAY),
    summary="The caller's stops of a day (default: today in the caller's time zone) in plan "
    "order, with what was recorded",
    description="Every stop of the caller's route in the newest ready plan of the day -- work "
    "orders and periodic account visits -- then the caller's open work orders the plan does "
    "not carry; ETAs from the plan (they change when it is re-planned), check-in/out (manual "
    "or from the geofence), checklist per work-order type, parts used and time spent.",
)
async def get_day(req: Req, query: DayQuery) -> PhoneDay:
    async with req.connection() as conn:
        day = query.day or await dayrepo.rep_today(conn, req.user.user_id, datetime.now(UTC))
        plan_id, stops = await dayrepo.load_day(conn, req.user.user_id, day)
    return PhoneDay(day, plan_id, [_stop_out(s) for s in stops])


@routes.post(
    "/api/v1/phone/day/stops/{stop_key}",
    access=Access.write(unscoped=_OWN_DAY),
    summary="Record a check-in/out, checklist ticks, parts used or completion at one of the "
    "caller's stops",
    description="Idempotent, for the phone's offline queue: the first check-in and the last "
    "check-out are kept, checklist ticks merge, parts replace the list.",
    errors=(404,),
)
async def post_stop(req: Req, path: StopPath, query: DayQuery, body: StopUpdate) -> StopOut:
    if body.checkin_at and body.checkout_at and body.checkout_at < body.checkin_at:
        raise Unprocessable("checkout_at: before checkin_at", field="checkout_at")
    uid = req.user.user_id
    async with req.connection() as conn, conn.transaction():
        day = query.day or await dayrepo.rep_today(conn, uid, datetime.now(UTC))
        _, stops = await dayrepo.load_day(conn, uid, day)
        stop = next((s for s in stops if s.key == path.stop_key), None)
        if stop is None:
            raise NotFound(f"stop {path.stop_key} is not on your day {day}")
        if body.checklist:
            allowed = {c["item"] for c in stop.extra["checklist"]}
            unknown = sorted(set(body.checklist) - allowed)
            if unknown:
                raise Unprocessable(
                    f"checklist: not an item of this stop: {unknown[0]!r}", field="checklist"
                )
        if (
            body.checkout_at
            and stop.extra["checkin_at"]
            and body.checkout_at < stop.extra["checkin_at"]
        ):
            raise Unprocessable("checkout_at: before the check-in", field="checkout_at")
        await dayrepo.record(
            conn,
            uid,
            day,
            stop,
            checkin_at=body.checkin_at,
            checkout_at=body.checkout_at,
            checklist=body.checklist,
            parts=[msgspec.to_builtins(p) for p in body.parts] if body.parts is not None else None,
            completed=body.completed,
        )
        _, stops = await dayrepo.load_day(conn, uid, day)
    return _stop_out(next(s for s in stops if s.key == path.stop_key))


# --------------------------------------------------------------------------- attachments

_ATTACH = "an attachment is seen where its account is (crm.access): 404 otherwise"
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
FileName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f/\\]+$")
]


class UploadQuery(msgspec.Struct, frozen=True):
    filename: FileName
    account_id: Id | None = None
    work_order_id: Id | None = None


class AttachmentQuery(msgspec.Struct, frozen=True):
    account_id: Id | None = None
    work_order_id: Id | None = None


class AttachmentPath(msgspec.Struct, frozen=True):
    attachment_id: Id


class AttachmentOut(msgspec.Struct, frozen=True):
    id: int
    sha256: str
    size_bytes: int
    content_type: str
    kind: str
    filename: str
    width: int | None
    height: int | None
    account_id: int
    work_order_id: int | None
    activity_id: int | None
    created_at: datetime
    url: str
    thumb_url: str | None


class AttachmentList(msgspec.Struct, frozen=True):
    items: list[AttachmentOut]


def _att_out(a: attachments.Attachment) -> AttachmentOut:
    base = f"/api/v1/phone/attachments/{a.id}"
    return AttachmentOut(
        a.id,
        a.sha256,
        a.size_bytes,
        a.content_type,
        a.kind,
        a.filename,
        a.width,
        a.height,
        a.account_id,
        a.work_order_id,
        a.activity_id,
        a.created_at,
        f"{base}/file",
        f"{base}/thumb" if a.has_thumb else None,
    )


@routes.post(
    "/api/v1/phone/attachments",
    access=Access.write(unscoped=_ATTACH),
    summary="Attach a photo or document to a work order or an account visit",
    description="The body is the file. Its type is read from its content (JPEG, PNG, WebP "
    "images; PDF documents), whatever its name; images are downscaled to 2048 px, re-encoded "
    "without metadata, and get a 256 px thumbnail. Content-addressed storage; a note on the "
    "account's timeline. Send an Idempotency-Key: the same key returns the first attachment.",
    body=RawBody(
        ("image/jpeg", "image/png", "image/webp", "application/pdf", "application/octet-stream"),
        "The file's bytes",
    ),
    status=201,
    max_body_bytes=MAX_UPLOAD_BYTES,
    errors=(404, 422),
)
async def upload_attachment(req: Req, query: UploadQuery, body: bytes) -> Reply[AttachmentOut]:
    if query.account_id is None and query.work_order_id is None:
        raise Unprocessable("account_id or work_order_id is required", field="account_id")
    key = req.header("Idempotency-Key") or f"upload-{uuid.uuid4()}"
    if len(key) > 100:
        raise Unprocessable("Idempotency-Key: at most 100 characters", field="Idempotency-Key")
    try:
        async with req.connection() as conn, conn.transaction():
            att, created = await attachments.upload(
                conn,
                req.settings,
                req.user,
                body,
                account_id=query.account_id,
                work_order_id=query.work_order_id,
                filename=query.filename,
                client_key=key,
            )
    except MediaError as exc:
        raise Unprocessable(str(exc), field="body") from None
    return Reply(_att_out(att), status=201 if created else 200)


@routes.get(
    "/api/v1/phone/attachments",
    access=Access.read(unscoped=_ATTACH),
    summary="Attachments of a work order or an account (those the caller may see)",
)
async def list_attachments(req: Req, query: AttachmentQuery) -> AttachmentList:
    if query.account_id is None and query.work_order_id is None:
        raise Unprocessable("account_id or work_order_id is required", field="account_id")
    async with req.connection() as conn:
        items = await attachments.visible(
            conn, req.user, account_id=query.account_id, work_order_id=query.work_order_id
        )
    return AttachmentList([_att_out(a) for a in items])


async def _file(req: Req, attachment_id: int, *, thumb: bool) -> web.Response:
    async with req.connection() as conn:
        found = await attachments.visible(conn, req.user, attachment_id=attachment_id)
    if not found or (thumb and not found[0].has_thumb):
        raise NotFound(f"no attachment {attachment_id}")
    a = found[0]
    store = attachments.store_for(req.settings)
    data = await asyncio.to_thread(store.get, a.sha256, thumb=thumb)
    if data is None:
        raise NotFound(f"attachment {attachment_id}: its file is missing")
    headers = {
        "Cache-Control": "private, max-age=86400, immutable",
        "ETag": f'"{a.sha256}{"-t" if thumb else ""}"',
        "Content-Disposition": f"inline; filename=attachment-{a.id}{'.jpg' if a.content_type == 'image/jpeg' else '.pdf'}",
    }
    return web.Response(
        body=data, content_type="image/jpeg" if thumb else a.content_type, headers=headers
    )


@routes.get(
    "/api/v1/phone/attachments/{attachment_id}/file",
    access=Access.read(unscoped=_ATTACH),
    summary="An attachment's file",
    content_type="application/octet-stream",
    errors=(404,),
)
async def attachment_file(req: Req, path: AttachmentPath) -> web.StreamResponse:
    return await _file(req, path.attachment_id, thumb=False)


@routes.get(
    "/api/v1/phone/attachments/{attachment_id}/thumb",
    access=Access.read(unscoped=_ATTACH),
    summary="An image attachment's thumbnail (JPEG, 256 px)",
    content_type="image/jpeg",
    errors=(404,),
)
async def attachment_thumb(req: Req, path: AttachmentPath) -> web.StreamResponse:
    return await _file(req, path.attachment_id, thumb=True)


# --------------------------------------------------------------------------- reports

REPORT_HOOKS = web.AppKey("phone_report_hooks", reports.ReportHooks)
_REPORT = "a report is seen where its work order's account is (crm.access); the rep signs their own"


class ServiceReportIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    work_order_id: Id
    signer_name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")
    ]
    signature_png: Annotated[  # base64 PNG, optionally as a data: URL
        str,
        msgspec.Meta(
            min_length=8, max_length=280_000, pattern=r"^(data:image/png;base64,)?[A-Za-z0-9+/=]+$"
        ),
    ]
    # where the signed report is e-mailed; else a contact of the account named like the
    # signer, else the account's primary contact
    customer_email: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=254,
                pattern=r"^[^@\s<>,;:\x00-\x1f\x7f]+@[^@\s<>,;:\x00-\x1f\x7f]+\.[^@\s<>,;:\x00-\x1f\x7f]+$",
            ),
        ]
        | None
    ) = None


class ReportCreated(msgspec.Struct, frozen=True):
    id: int
    sha256: str
    document_id: str
    message: str  # base64url of the bytes the phone signs (ES256)


class ReportSign(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    signature: B64Url


class ReportPath(msgspec.Struct, frozen=True):
    report_id: Id


class ReportOut(msgspec.Struct, frozen=True):
    id: int
    work_order_id: int
    account_id: int
    sha256: str
    status: str
    signer_name: str
    created_at: datetime
    signed_at: datetime | None
    pdf_url: str
    receipt: dict[str, Any] | None  # the ledger receipt once anchored: `fieldmesh verify` it
    email_state: str | None = None  # queued | no_address | no_mailbox | refused: <why>
    verify_url: str = ""  # the public verification page for this report


@routes.post(
    "/api/v1/phone/reports",
    access=Access.write(unscoped=_REPORT),
    summary="Make the signed service report of a work order (PDF with the customer's signature)",
    description="Work done (checklist, notes), parts, times, photos and the customer's "
    "signature as a PDF attached to the work order; then the phone signs `message` and "
    "posts it to .../sign. Idempotency-Key: the same key gives the same report.",
    status=201,
    # a valid body is ASCII and under 300 kB; room for the JSON escapes of any 280,000
    # characters, so an oversized signature is refused by name (422), not by size
    max_body_bytes=4 * 1024 * 1024,
    errors=(404, 413, 422),
)
async def create_report(req: Req, body: ServiceReportIn) -> ReportCreated:
    import base64
    import binascii

    try:
        png = base64.b64decode(body.signature_png.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise Unprocessable("signature_png: not base64", field="signature_png") from None
    key = req.header("Idempotency-Key") or str(uuid.uuid4())
    async with req.connection() as conn, conn.transaction():
        rid, sha = await reports.create(
            conn,
            req.settings,
            req.user,
            work_order_id=body.work_order_id,
            signer_name=body.signer_name,
            signature_png=png,
            client_key=key[:90],
            customer_email=body.customer_email,
        )
    from ledger.documents import message

    doc = reports.document_id(rid)
    return ReportCreated(rid, sha, doc, reports.b64url(message(doc, sha)))


@routes.post(
    "/api/v1/phone/reports/{report_id}/sign",
    access=Access.write(unscoped=_REPORT),
    summary="The phone's signature of the report: checked, the rep's added, anchored via the ledger",
    errors=(404, 422),
)
async def sign_report(req: Req, path: ReportPath, body: ReportSign) -> ReportOut:
    try:
        sig = b64url_decode(body.signature)
    except ValueError:
        raise Unprocessable("signature: not base64url", field="signature") from None
    async with req.connection() as conn, conn.transaction():
        await reports.sign(
            conn,
            req.settings,
            req.user,
            path.report_id,
            device_id=body.device_id,
            device_sig=sig,
            hooks=req.app.get(REPORT_HOOKS),
        )
    out: ReportOut = await get_report(req, path)
    return out


@routes.get(
    "/api/v1/phone/reports/{report_id}",
    access=Access.read(unscoped=_REPORT),
    summary="A service report: its hash, PDF and (once anchored) its ledger receipt",
    errors=(404,),
)
async def get_report(req: Req, path: ReportPath) -> ReportOut:
    async with req.connection() as conn:
        r = await reports.get(conn, req.user, path.report_id)
        receipt = None
        if r["ledger_source_id"]:
            found = await receipt_for_async(conn, r["ledger_source_id"], reports.LEDGER_SOURCE)
            receipt = found.to_json() if found is not None else None
    return ReportOut(
        r["id"],
        r["work_order_id"],
        r["account_id"],
        r["sha256"],
        r["status"],
        r["signer_name"],
        r["created_at"],
        r["signed_at"],
        f"/api/v1/phone/attachments/{r['attachment_id']}/file",
        receipt,
        r["email_state"],
        verify_path(r["sha256"]),
    )


# --------------------------------------------------------------------------- analytics

_REPS = "reps the caller may see: themselves, a manager's team; admins and viewers all"


class PhoneAnalyticsQuery(msgspec.Struct, frozen=True, rename={"lo": "from", "hi": "to"}):
    lo: date | None = None
    hi: date | None = None
    rep_id: Id | None = None


class RepDay(msgspec.Struct, frozen=True):
    day: date
    visits: int
    time_on_site_s: float
    travel_m: float
    travel_s: float


class RepFigures(msgspec.Struct, frozen=True):
    rep_id: int
    days_active: int
    visits: int
    visits_per_day: float
    time_on_site_s: float
    travel_m: float
    travel_s: float
    work_orders_done: int
    first_time_fixes: int
    first_time_fix_rate: float | None
    daily: list[RepDay]


class PhoneAnalytics(msgspec.Struct, frozen=True, rename={"lo": "from", "hi": "to"}):
    lo: date
    hi: date
    reps: list[RepFigures]


@routes.get(
    "/api/v1/phone/analytics",
    access=Access.read(unscoped=_REPS),
    summary="Per rep: visits per day, time on site, travel, first-time fix (default: last 7 days)",
    description="Visits and time on site from geofence visits and manual check-ins; travel "
    "from the phones' GPS (geodesic, accurate fixes only, moving segments for time); a work "
    "order is a first-time fix when it took one visit day and no other work order was "
    f"opened at the account within {analytics.FOLLOW_UP_DAYS} days.",
    errors=(404, 422),
)
async def phone_analytics(req: Req, query: PhoneAnalyticsQuery) -> PhoneAnalytics:
    hi = query.hi or datetime.now(UTC).date()
    lo = query.lo or hi - timedelta(days=6)
    if lo > hi or (hi - lo).days > 366:
        raise Unprocessable("from: must be before to, at most a year apart", field="from")
    user = req.user
    async with req.connection() as conn:
        if user.sees_everything:
            cur = await conn.execute("SELECT id FROM users WHERE role IN ('rep', 'manager')")
            reps = [int(r[0]) for r in await cur.fetchall()]
        else:
            reps = list(user.team_user_ids)
        if query.rep_id is not None:
            if query.rep_id not in reps:
                raise NotFound(f"no rep {query.rep_id}", field="rep_id")
            reps = [query.rep_id]
        daily, ftf = await analytics.rep_analytics(conn, reps, lo, hi)
    per: dict[int, list[RepDay]] = {}
    for rep, day, visits, on_site, travel_m, travel_s in daily:
        per.setdefault(int(rep), []).append(
            RepDay(day, int(visits), float(on_site), round(float(travel_m), 1), float(travel_s))
        )
    out = []
    for rep in sorted(set(per) | set(ftf)):
        days = per.get(rep, [])
        active = sum(1 for d in days if d.visits or d.travel_m > 0)
        visits = sum(d.visits for d in days)
        done, first = ftf.get(rep, (0, 0))
        out.append(
            RepFigures(
                rep,
                active,
                visits,
                round(visits / active, 2) if active else 0.0,
                sum(d.time_on_site_s for d in days),
                round(sum(d.travel_m for d in days), 1),
                sum(d.travel_s for d in days),
                done,
                first,
                round(first / done, 3) if done else None,
                days,
            )
        )
    return PhoneAnalytics(lo, hi, out)


def setup(app: web.Application) -> None:
    routes.mount(app)
    verify_routes.routes.mount(app)
    app[REPORT_HOOKS] = EngageReportMailer(app[SETTINGS])
