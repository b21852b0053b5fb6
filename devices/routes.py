"""HTTP API of real devices: enrolment, claiming, decommissioning, commands, firmware,
staged rollouts and fleet health.

Access: enrolment tokens, commands, firmware and rollouts are for admins and managers;
release keys for admins. A device is enrolled with its one-time token and a proof of its
key (public endpoint: the token is the credential). Device endpoints are scoped like the
telemetry ones (`telemetry.access.device_scope`: a device the caller may not see answers
404). Claiming puts an enrolled, unclaimed device onto an account the caller may see and
write. Firmware downloads are public but need the link signed for that device.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from psycopg import sql

from crm.access import require_account
from devices import commands, enrolment, firmware, health, rollouts
from devices.tokens import TOKEN_PATTERN, decode_public_key, link_key, link_ok
from edge_agent.enrol import Enrolment, ReleaseKey
from kernel import broker
from kernel.errors import ApiError, NotFound, Unprocessable
from kernel.http import Access, RawBody, Req, Routes
from ledger.verify import b64url_encode
from telemetry.access import device_clause, device_scope
from telemetry.contracts import DeviceId

routes = Routes("devices", "Real devices: enrolment, commands, OTA firmware, fleet health")

B64 = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,200}={0,2}$", max_length=200)]
Model = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Group = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Version = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
KeyId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
DAY_S = 86_400


# --------------------------------------------------------------------------- enrolment


class EnrolmentTokenIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl_s: Annotated[int, msgspec.Meta(ge=60, le=30 * DAY_S)] = DAY_S
    device_id: DeviceId | None = None
    account_id: Id | None = None
    equipment_model: Model | None = None
    device_group: Group | None = None


class EnrolmentTokenOut(msgspec.Struct, frozen=True):
    id: int
    token: str  # shown once: only its hash is kept
    expires_at: datetime
    device_id: str | None
    account_id: int | None
    equipment_model: str | None
    device_group: str | None


@routes.post(
    "/api/v1/enrolment-tokens",
    access=Access.managers(unscoped="tokens name no record; a named account is checked"),
    summary="A one-time enrolment token for a device (shown once, stored hashed)",
    status=201,
    errors=(404,),
)
async def create_token(req: Req, body: EnrolmentTokenIn) -> EnrolmentTokenOut:
    if body.device_id is not None:
        try:
            broker.check_device_id(req.settings, body.device_id)
        except broker.BrokerError as exc:
            raise Unprocessable(str(exc), field="device_id") from None
    if body.account_id is not None:
        await require_account(req, body.account_id)
    async with req.connection() as conn:
        t = await enrolment.issue_token(
            conn,
            created_by=req.user.user_id,
            ttl_s=body.ttl_s,
            device_id=body.device_id,
            account_id=body.account_id,
            equipment_model=body.equipment_model,
            device_group=body.device_group,
        )
    return EnrolmentTokenOut(
        t.id,
        t.token,
        t.expires_at,
        body.device_id,
        body.account_id,
        body.equipment_model,
        body.device_group,
    )


class DeviceEnrolIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: DeviceId
    token: Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN)]
    public_key: B64
    proof: B64
    equipment_model: Model | None = None
    firmware: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[\x20-\x7e]*$")] | None = None


@routes.post(
    "/api/v1/device-enrolments",
    access=Access.public(
        "the one-time token and the proof of the device's key are the credentials"
    ),
    summary="A device enrols: token, Ed25519 public key and proof in, broker credentials out",
    description="The proof is the key's Ed25519 signature (base64url) of "
    "`fieldmesh-enrol-v1\\0{device_id}\\0{token}`. A used, expired or unknown token or a "
    "wrong proof is a 401; a device already enrolled is a 409 (the token stays unused).",
    status=201,
    max_body_bytes=8 * 1024,
    errors=(401, 409, 503),
)
async def enrol_device(req: Req, body: DeviceEnrolIn) -> Enrolment:
    try:
        public_key = decode_public_key(body.public_key)
    except ValueError as exc:
        raise Unprocessable(f"public_key: {exc}", field="public_key") from None
    settings = req.settings
    async with req.connection() as conn:
        done = await enrolment.enrol(
            conn,
            settings,
            device_id=body.device_id,
            token=body.token,
            public_key=public_key,
            proof=body.proof,
            equipment_model=body.equipment_model,
            firmware=body.firmware,
        )
        keys = await firmware.trusted_keys(conn)
    port, ca = broker.client_endpoint(settings)
    return Enrolment(
        device_id=done.device_id,
        tenant=done.tenant,
        mqtt_host=settings.mqtt_host,
        mqtt_port=port,
        mqtt_username=done.credentials.username,
        mqtt_password=done.credentials.password,
        mqtt_tls=ca is not None,
        release_keys=[ReleaseKey(k, b64url_encode(v)) for k, v in sorted(keys.items())],
        ca_pem=ca.read_text() if ca is not None and ca.exists() else None,
        equipment_model=done.equipment_model,
        seq_start=done.seq_start,
    )


class FleetDevicePath(msgspec.Struct, frozen=True):
    device_id: DeviceId


class ClaimIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    account_id: Id
    asset_id: Id | None = None
    equipment_model: Model | None = None


class ClaimOut(msgspec.Struct, frozen=True):
    device_id: str
    account_id: int
    asset_id: int


@routes.post(
    "/api/v1/devices/{device_id}/claim",
    access=Access.write(
        unscoped="an unclaimed device is seen by no one yet; the target account is checked"
    ),
    summary="Claim an enrolled, unclaimed device onto an account (an asset of it)",
    errors=(404, 409),
)
async def claim_device(req: Req, path: FleetDevicePath, body: ClaimIn) -> ClaimOut:
    await require_account(req, body.account_id)
    async with req.connection() as conn:
        asset_id = await enrolment.claim(
            conn, path.device_id, body.account_id, body.asset_id, body.equipment_model
        )
    return ClaimOut(path.device_id, body.account_id, asset_id)


class DecommissionOut(msgspec.Struct, frozen=True):
    device_id: str
    state: str


@routes.post(
    "/api/v1/devices/{device_id}/decommission",
    access=Access.managers(scope=device_scope),
    summary="Decommission a device: broker access revoked at once, history kept",
    errors=(409, 503),
)
async def decommission_device(req: Req, path: FleetDevicePath) -> DecommissionOut:
    async with req.connection() as conn:
        await enrolment.decommission(conn, req.settings, path.device_id, req.user.user_id)
    return DecommissionOut(path.device_id, "decommissioned")


# --------------------------------------------------------------------------- commands


class DeviceCommandIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Literal["config", "ping", "reboot", "ota"]
    args: dict[str, Any] = {}
    timeout_s: Annotated[int, msgspec.Meta(ge=5, le=DAY_S)] = 300


class DeviceCommandOut(msgspec.Struct, frozen=True):
    command_id: str
    device_id: str
    name: str
    args: dict[str, Any]
    state: str  # sent | acked | failed | timed_out | cancelled
    detail: str
    created_by: int | None
    created_at: datetime
    deadline_at: datetime
    finished_at: datetime | None
    rollout_id: int | None


class DeviceCommandPage(msgspec.Struct, frozen=True):
    items: list[DeviceCommandOut]


class DeviceCommandListQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


class DeviceCommandPath(msgspec.Struct, frozen=True):
    device_id: DeviceId
    command_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f-]{36}$")]


def _check_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments each command takes, checked here so a device gets only sane ones."""

    def number(key: str, lo: float, hi: float) -> float:
        v = args.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise Unprocessable(f"args.{key}: a number in [{lo:g}, {hi:g}]", field=f"args.{key}")
        return float(v)

    allowed = {
        "config": {"sample_interval_s"},
        "reboot": {"down_s"},
        "ping": set(),
        "ota": {"sha256"},
    }
    extra = set(args) - allowed[name]
    if extra:
        raise Unprocessable(f"args: {name} takes no {sorted(extra)[0]!r}", field="args")
    if name == "config":
        return {"sample_interval_s": number("sample_interval_s", 0.1, DAY_S)}
    if name == "reboot":
        return {"down_s": number("down_s", 0, 300)} if "down_s" in args else {}
    return {}


@routes.post(
    "/api/v1/devices/{device_id}/commands",
    access=Access.managers(scope=device_scope),
    summary="Send a command (config, ping, reboot, ota) to a device over MQTT",
    description="`config`: `{sample_interval_s}`; `reboot`: `{down_s?}`; `ping`: `{}`; "
    "`ota`: `{sha256}` of an uploaded image (the device downloads and verifies it). The "
    "command's state follows the device's ack: sent, acked, failed, timed_out.",
    status=201,
    max_body_bytes=16 * 1024,
    errors=(404, 409, 503),
)
async def send_command(req: Req, path: FleetDevicePath, body: DeviceCommandIn) -> DeviceCommandOut:
    settings = req.settings
    async with req.connection() as conn:
        if body.name == "ota":
            sha = body.args.get("sha256")
            if not isinstance(sha, str) or len(sha) != 64:
                raise Unprocessable("args.sha256: the image's SHA-256", field="args.sha256")
            image = await firmware.get_image(conn, sha)
            args = firmware.ota_args(settings, image, path.device_id)
        else:
            args = _check_args(body.name, body.args)
        async with conn.transaction():
            cmd_id = await commands.send(
                conn,
                settings,
                path.device_id,
                body.name,
                args,
                created_by=req.user.user_id,
                timeout_s=float(body.timeout_s),
            )
        row = await commands.get(conn, path.device_id, cmd_id)
    return DeviceCommandOut(*row)


@routes.get(
    "/api/v1/devices/{device_id}/commands",
    access=Access.read(scope=device_scope),
    summary="A device's commands, newest first, with their state from the device's acks",
)
async def list_commands(
    req: Req, path: FleetDevicePath, query: DeviceCommandListQuery
) -> DeviceCommandPage:
    async with req.connection() as conn:
        rows = await commands.list_for_device(conn, path.device_id, query.limit)
    return DeviceCommandPage([DeviceCommandOut(*r) for r in rows])


@routes.get(
    "/api/v1/devices/{device_id}/commands/{command_id}",
    access=Access.read(scope=device_scope),
    summary="One command and its state",
)
async def get_command(req: Req, path: DeviceCommandPath) -> DeviceCommandOut:
    async with req.connection() as conn:
        row = await commands.get(conn, path.device_id, path.command_id)
    return DeviceCommandOut(*row)


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
    names = [c.strip() for c in rollouts.ROLLOUT_COLUMNS.split(",")]
    fields: dict[str, Any] = dict(zip(names, row, strict=True))
    fields.update(
        devices=p.pending + p.sent + p.succeeded + p.failed,
        pending=p.pending,
        sent=p.sent,
        succeeded=p.succeeded,
        failed=p.failed,
    )
    return msgspec.convert(fields, RolloutOut)


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
