"""HTTP API of the rep's phone: register this phone as a field device and get its broker
connection (GPS goes over MQTT, see phone/gps.py), the day's stops, attachments, reports.

Every route acts on the caller's own phones, stops and records: another user's phone
answers 404; records go through the CRM's scope rules (crm.access)."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

import msgspec
from aiohttp import web

from kernel.http import Access, Req, Routes
from phone import devices
from phone.gps import POLICY, gps_topic, receipt_topic, status_topic

routes = Routes("phone", "The rep's phone as a field device")

_OWN_PHONE = "a user registers and connects only their own phones (every query filters by them)"

DeviceId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]


class PhoneIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


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


async def _connection(req: Req, phone: devices.Phone) -> PhoneConnection:
    settings = req.settings
    password = await devices.broker_password(settings, phone.device_id)
    async with req.connection() as conn:
        cur = await conn.execute(
            "SELECT shift_start, shift_end FROM users WHERE id = %s", (phone.user_id,)
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
    async with req.connection() as conn, conn.transaction():
        phone = await devices.register(conn, req.settings, req.user.user_id, body.label)
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


def setup(app: web.Application) -> None:
    routes.mount(app)
