"""HTTP API of real devices: enrolment, claiming, decommissioning and commands (firmware,
rollouts and fleet health are in devices.fleet_routes, mounted with these).

Access: enrolment tokens, commands, firmware and rollouts are for admins and managers;
release keys for admins. A device is enrolled with its one-time token and a proof of its
key (public endpoint: the token is the credential). Device endpoints are scoped like the
telemetry ones (`telemetry.access.device_scope`: a device the caller may not see answers
404). Claiming puts an enrolled, unclaimed device onto an account the caller may see and
write. Firmware downloads are public but need the link signed for that device.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from crm.access import require_account
from devices import commands, enrolment, firmware
from devices.tokens import TOKEN_PATTERN, decode_public_key
from edge_agent.enrol import Enrolment, ReleaseKey
from kernel import broker
from kernel.errors import Unprocessable
from kernel.http import Access, Req, Routes
from ledger.verify import b64url_encode
from telemetry.access import device_scope
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


def setup(app: web.Application) -> None:
    from devices import fleet_routes  # firmware, rollouts, health: mounted with these

    routes.mount(app)
    fleet_routes.setup(app)
