"""HTTP API of firmware, staged OTA rollouts and fleet health (see devices.routes for
enrolment, claims and commands).

Release keys are for admins; firmware and rollouts for admins and managers (a rollout
reaches only devices its creator may see); health is read by anyone, over the devices
they may see. Firmware downloads are public but need the link signed for that device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import sql

from devices import firmware, health, rollouts
from devices.policy import Progress
from devices.routes import B64, DAY_S, FleetDevicePath, Group, Id, KeyId, Model, Sha256, Version
from devices.tokens import decode_public_key, link_key, link_ok
from edge_agent.enrol import ReleaseKey
from kernel import broker
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import Access, RawBody, Req, Routes
from ledger.verify import b64url_encode
from telemetry.access import device_clause, device_scope
from telemetry.contracts import DeviceId

routes = Routes("devices", "Real devices: enrolment, commands, OTA firmware, fleet health")

# --------------------------------------------------------------------------- firmware


class ReleaseKeyIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key_id: KeyId
    public_key: B64


@routes.post(
    "/api/v1/release-keys",
    access=Access.admin(),
    summary="Register a firmware release key (Ed25519 public key, base64url)",
    status=201,
    errors=(409,),
)
async def add_release_key(req: Req, body: ReleaseKeyIn) -> ReleaseKey:
    try:
        raw = decode_public_key(body.public_key)
    except ValueError as exc:
        raise Unprocessable(f"public_key: {exc}", field="public_key") from None
    async with req.connection() as conn:
        await firmware.add_release_key(conn, body.key_id, raw, req.user.user_id)
    return ReleaseKey(body.key_id, b64url_encode(raw))


class FirmwareUploadQuery(msgspec.Struct, frozen=True):
    equipment_model: Model
    version: Version
    key_id: KeyId
    signature: B64


class FirmwareImageOut(msgspec.Struct, frozen=True):
    sha256: str
    equipment_model: str
    version: str
    size_bytes: int
    key_id: str
    signature: str


@routes.post(
    "/api/v1/firmware",
    access=Access.managers(unscoped="firmware images are fleet-wide"),
    summary="Upload a signed firmware image (stored under its SHA-256)",
    description="The body is the image. `signature` is the release key's Ed25519 signature "
    "(base64url) of `fieldmesh-firmware-v1\\0{equipment_model}\\0{version}\\0{sha256 hex}`; "
    "an unknown key or a bad signature is a 422, the image is then not stored.",
    body=RawBody(("application/octet-stream",), "the firmware image"),
    max_body_bytes=firmware.MAX_IMAGE_BYTES,
    status=201,
    errors=(409, 413),
)
async def upload_firmware(req: Req, query: FirmwareUploadQuery, body: bytes) -> FirmwareImageOut:
    async with req.connection() as conn:
        img = await firmware.accept_image(
            conn,
            req.settings,
            body,
            equipment_model=query.equipment_model,
            version=query.version,
            key_id=query.key_id,
            signature=query.signature,
            uploaded_by=req.user.user_id,
        )
    return FirmwareImageOut(
        img.sha256, img.equipment_model, img.version, img.size_bytes, img.key_id, img.signature
    )


class FirmwareListQuery(msgspec.Struct, frozen=True):
    equipment_model: Model | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class FirmwareImageRow(msgspec.Struct, frozen=True):
    sha256: str
    equipment_model: str
    version: str
    size_bytes: int
    key_id: str
    uploaded_at: datetime


class FirmwareList(msgspec.Struct, frozen=True):
    items: list[FirmwareImageRow]


@routes.get(
    "/api/v1/firmware",
    access=Access.managers(unscoped="firmware images are fleet-wide"),
    summary="Uploaded firmware images, newest first (optionally of one equipment model)",
)
async def list_firmware(req: Req, query: FirmwareListQuery) -> FirmwareList:
    async with req.read_connection() as conn:
        cur = await conn.execute(
            "SELECT sha256, equipment_model, version, size_bytes, key_id, uploaded_at"
            " FROM firmware_image WHERE %s::text IS NULL OR equipment_model = %s"
            " ORDER BY uploaded_at DESC, sha256 LIMIT %s",
            (query.equipment_model, query.equipment_model, query.limit),
        )
        rows = await cur.fetchall()
    return FirmwareList([FirmwareImageRow(*r) for r in rows])


class FirmwareImagePath(msgspec.Struct, frozen=True):
    sha256: Sha256


class FirmwareDownloadQuery(msgspec.Struct, frozen=True):
    device: DeviceId
    expires: Annotated[int, msgspec.Meta(ge=0, le=2**40)]
    mac: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


@routes.get(
    "/api/v1/firmware/{sha256}/download",
    access=Access.public("the link is signed for one device and expires (devices.tokens)"),
    summary="Download a firmware image (Range requests resume a partial download)",
    content_type="application/octet-stream",
    response=None,
    errors=(403, 404),
)
async def download_firmware(
    req: Req, path: FirmwareImagePath, query: FirmwareDownloadQuery
) -> web.StreamResponse:
    key = link_key(broker.master_key(req.settings))
    if not link_ok(key, path.sha256, query.device, query.expires, query.mac, time.time()):
        raise ApiError("the download link is invalid or expired", code="forbidden", status=403)
    file = firmware.image_path(req.settings, path.sha256)
    if not file.exists():
        raise NotFound(f"no firmware image {path.sha256}", field="sha256")
    return web.FileResponse(file, headers={"Content-Type": "application/octet-stream"})


# --------------------------------------------------------------------------- rollouts


class RolloutIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sha256: Sha256
    percent: Annotated[float, msgspec.Meta(gt=0, le=100)]
    device_group: Group | None = None
    wave_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    failure_threshold: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    min_results: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 3
    command_timeout_s: Annotated[int, msgspec.Meta(ge=10, le=DAY_S)] = 900


class RolloutOut(msgspec.Struct, frozen=True):
    id: int
    sha256: str
    equipment_model: str
    device_group: str | None
    percent: float
    wave_size: int
    failure_threshold: float
    min_results: int
    command_timeout_s: int
    state: str  # running | halted | completed | cancelled
    reason: str
    created_by: int | None
    created_at: datetime
    finished_at: datetime | None
    devices: int
    pending: int
    sent: int
    succeeded: int
    failed: int


class RolloutPath(msgspec.Struct, frozen=True):
    id: Id


_ROLLOUT_NAMES = [c.strip() for c in rollouts.ROLLOUT_COLUMNS.split(",")]


def _rollout_out(row: Sequence[Any], p: Progress) -> RolloutOut:
    """A rollout row (ROLLOUT_COLUMNS) and its progress as the API's model."""
    fields: dict[str, Any] = dict(zip(_ROLLOUT_NAMES, row, strict=True))
    fields.update(
        devices=p.pending + p.sent + p.succeeded + p.failed,
        pending=p.pending,
        sent=p.sent,
        succeeded=p.succeeded,
        failed=p.failed,
    )
    return msgspec.convert(fields, RolloutOut)


async def _rollout(req: Req, rollout_id: int) -> RolloutOut:
    async with req.connection() as conn:
        async with conn.transaction():
            await rollouts.advance(conn, req.settings, rollout_id)  # fresh figures
        cur = await conn.execute(
            f"SELECT {rollouts.ROLLOUT_COLUMNS} FROM firmware_rollout WHERE id = %s", (rollout_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no rollout {rollout_id}", field="id")
        p = await rollouts.progress(conn, rollout_id)
    return _rollout_out(row, p)


@routes.post(
    "/api/v1/rollouts",
    access=Access.managers(unscoped="the rollout reaches only devices the caller may see"),
    summary="Start a staged OTA rollout to a percentage of a model's (group's) devices",
    description="Devices are taken in a stable pseudo-random order; the image goes out in "
    "waves of `wave_size`; once `min_results` devices answered, a failure rate above "
    "`failure_threshold` halts the rollout.",
    status=201,
    errors=(404, 503),
)
async def create_rollout(req: Req, body: RolloutIn) -> RolloutOut:
    visible, params = device_clause(req.user, sql.Identifier("e", "device_id"))
    async with req.connection() as conn:
        image = await firmware.get_image(conn, body.sha256)
        async with conn.transaction():
            rollout_id, _n = await rollouts.create(
                conn,
                image=image,
                device_group=body.device_group,
                percent=body.percent,
                wave_size=body.wave_size,
                failure_threshold=body.failure_threshold,
                min_results=body.min_results,
                command_timeout_s=body.command_timeout_s,
                created_by=req.user.user_id,
                visible=visible,
                visible_params=params,
            )
    return await _rollout(req, rollout_id)  # sends the first wave


@routes.get(
    "/api/v1/rollouts/{id}",
    access=Access.managers(unscoped="rollouts are fleet operations"),
    summary="A rollout and its progress",
    errors=(503,),
)
async def get_rollout(req: Req, path: RolloutPath) -> RolloutOut:
    return await _rollout(req, path.id)


class RolloutListQuery(msgspec.Struct, frozen=True):
    state: Literal["running", "halted", "completed", "cancelled"] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class RolloutList(msgspec.Struct, frozen=True):
    items: list[RolloutOut]


@routes.get(
    "/api/v1/rollouts",
    access=Access.managers(unscoped="rollouts are fleet operations"),
    summary="Rollouts, newest first, with their progress (as last advanced by the job)",
)
async def list_rollouts(req: Req, query: RolloutListQuery) -> RolloutList:
    cols = ", ".join(f"r.{n}" for n in _ROLLOUT_NAMES)
    async with req.read_connection() as conn:
        cur = await conn.execute(
            f"SELECT {cols}, count(d.*) FILTER (WHERE d.state = 'pending'),"
            " count(d.*) FILTER (WHERE d.state = 'sent'),"
            " count(d.*) FILTER (WHERE d.state = 'succeeded'),"
            " count(d.*) FILTER (WHERE d.state = 'failed')"
            " FROM firmware_rollout r LEFT JOIN rollout_device d ON d.rollout_id = r.id"
            " WHERE %s::text IS NULL OR r.state = %s"
            " GROUP BY r.id ORDER BY r.id DESC LIMIT %s",
            (query.state, query.state, query.limit),
        )
        rows = await cur.fetchall()
    n = len(_ROLLOUT_NAMES)
    return RolloutList([_rollout_out(r[:n], Progress(*(int(x) for x in r[n:]))) for r in rows])


class WidenIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    percent: Annotated[float, msgspec.Meta(gt=0, le=100)]


@routes.post(
    "/api/v1/rollouts/{id}/widen",
    access=Access.managers(unscoped="the rollout reaches only devices the caller may see"),
    summary="Raise a rollout's percentage: the next devices in its order get the image",
    description="A completed rollout runs again for the new devices; a halted or cancelled "
    "one is a 409 (start a new rollout after fixing the image).",
    errors=(409, 503),
)
async def widen_rollout(req: Req, path: RolloutPath, body: WidenIn) -> RolloutOut:
    visible, params = device_clause(req.user, sql.Identifier("e", "device_id"))
    async with req.connection() as conn, conn.transaction():
        await rollouts.widen(conn, path.id, body.percent, visible, params)
    return await _rollout(req, path.id)


@routes.post(
    "/api/v1/rollouts/{id}/cancel",
    access=Access.managers(unscoped="rollouts are fleet operations"),
    summary="Stop a running rollout (devices already updated keep their image)",
    errors=(503,),
)
async def cancel_rollout(req: Req, path: RolloutPath) -> RolloutOut:
    async with req.connection() as conn:
        await rollouts.cancel(conn, path.id)
    return await _rollout(req, path.id)


# --------------------------------------------------------------------------- health


class FleetHealthQuery(msgspec.Struct, frozen=True):
    window_h: Annotated[float, msgspec.Meta(ge=0.1, le=24 * 365)] = 24.0


class DeviceHealth(msgspec.Struct, frozen=True):
    device_id: str
    equipment_model: str | None
    enrolment: str | None
    online: bool | None
    status_changed_at: datetime | None
    firmware: str | None
    uptime_s: float
    last_seen: datetime | None
    messages_per_hour: float
    alerts: int
    failures: int


class ModelHealth(msgspec.Struct, frozen=True):
    equipment_model: str
    devices: int
    online: int
    last_seen: datetime | None
    messages_per_hour: float
    alerts: int
    alerts_per_device_day: float
    failures: int
    mtbf_h: float | None
    device_hours: float
    firmware: dict[str, int]


class FleetHealth(msgspec.Struct, frozen=True):
    window_h: float
    models: list[ModelHealth]


@routes.get(
    "/api/v1/devices/{device_id}/health",
    access=Access.read(scope=device_scope),
    summary="A device's health: uptime, last seen, message rate, firmware, alerts",
)
async def device_health(req: Req, path: FleetDevicePath, query: FleetHealthQuery) -> DeviceHealth:
    async with req.read_connection() as conn:
        h = await health.device_health(conn, path.device_id, timedelta(hours=query.window_h))
    if h is None:
        raise NotFound(f"no device {path.device_id!r}", field="device_id")
    return msgspec.convert(h, DeviceHealth)


@routes.get(
    "/api/v1/fleet/health",
    access=Access.read(unscoped="the figures cover only the devices the caller may see"),
    summary="Fleet health per equipment model: devices online, message and alert rates, "
    "firmware versions, MTBF",
)
async def fleet_health(req: Req, query: FleetHealthQuery) -> FleetHealth:
    visible, params = device_clause(req.user, sql.Identifier("d", "device_id"))
    async with req.read_connection() as conn:
        models = await health.model_health(conn, timedelta(hours=query.window_h), visible, params)
    return FleetHealth(query.window_h, [msgspec.convert(m, ModelHealth) for m in models])


def setup(app: web.Application) -> None:
    routes.mount(app)
