"""Enrolment tokens, enrolment, claiming and decommissioning (PostgreSQL and the broker).

Enrolment is one transaction: the token is consumed by one conditional UPDATE (used once,
unexpired, for this device if it names one; a concurrent second use finds it used), the
device's public key is recorded in the device registry (so the gateway verifies its
signed events and the ledger takes them), its enrolment row is written, it is claimed
onto the token's account if the token names one, and its broker account is created (or
re-enabled with a new password after a decommission). Any failure rolls everything back,
the token included, so a device can try again.

An id that is already a device is not free to take: an enrolment would give it the
enrolling key, rotate its broker account to the enroller's password and (with the token's
account) put it, history and all, in the enroller's scope. A phone's id is never enrolled
(phones register through the phone API); a decommissioned device, or one provisioned
before enrolment, only with a token of someone who may see it (or of the CLI, whose
operator has the database anyway).

The device registry (`device`) is telemetry's table and assets (the claim) are crm_sync's:
both are written here with the same statements their owners use, because the device
scope (`device_scope`) is defined on them; crm_sync cannot be imported from this layer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from devices.tokens import new_token, proof_ok, token_hash
from identity.auth import load_principal
from kernel import broker
from kernel.errors import ApiError, Conflict, NotFound, Unavailable
from kernel.settings import Settings
from telemetry.access import may_see_device


class EnrolmentRefused(ApiError):
    status = 401

    def __init__(self, message: str, field: str = "token") -> None:
        super().__init__(message, code="enrolment_refused", field=field)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    token: str
    expires_at: datetime


async def issue_token(
    conn: AsyncConnection[Any],
    *,
    created_by: int | None,
    ttl_s: int,
    device_id: str | None = None,
    account_id: int | None = None,
    equipment_model: str | None = None,
    device_group: str | None = None,
) -> IssuedToken:
    token = new_token()
    cur = await conn.execute(
        "INSERT INTO enrolment_token (token_hash, device_id, account_id, equipment_model,"
        " device_group, created_by, expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + %s)"
        " RETURNING id, expires_at",
        (
            token_hash(token),
            device_id,
            account_id,
            equipment_model,
            device_group,
            created_by,
            timedelta(seconds=ttl_s),
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return IssuedToken(int(row[0]), token, row[1])


@dataclass(frozen=True, slots=True)
class Enrolled:
    device_id: str
    tenant: str
    credentials: broker.MqttCredentials
    equipment_model: str | None
    account_id: int | None
    seq_start: int  # above every seq stored for this device id (a re-enrolled device)


async def _why_refused(conn: AsyncConnection[Any], digest: bytes, device_id: str) -> str:
    cur = await conn.execute(
        "SELECT used_at IS NOT NULL, expires_at <= now(), device_id FROM enrolment_token"
        " WHERE token_hash = %s",
        (digest,),
    )
    row = await cur.fetchone()
    if row is None:
        return "unknown enrolment token"
    if row[0]:
        return "this enrolment token has been used already"
    if row[1]:
        return "this enrolment token has expired"
    if row[2] is not None and row[2] != device_id:
        return "this enrolment token is for another device"
    return "this enrolment token cannot be used"


def _broker_account(settings: Settings, device_id: str) -> broker.MqttCredentials:
    """A new account bound to the device id; an existing one (decommissioned, or provisioned
    by hand before) gets a new password, so whoever held the old one is locked out."""
    if settings.embedded_mqtt:
        try:
            return broker.rotate_device(settings, device_id)
        except broker.BrokerError as exc:
            if "has no broker account" not in str(exc):
                raise
    return broker.provision_mqtt_users(settings, [device_id])[0]


async def _may_take(
    conn: AsyncConnection[Any], device_id: str, existing: tuple[Any, ...], issuer: int | None
) -> None:
    """Refuse (409) an enrolment of an id that is already a device, unless it is one the
    token's issuer may take over: a decommissioned device, or one provisioned before
    enrolment, that the issuer may see."""
    public_key, state, kind = existing
    if kind == "phone":
        raise Conflict(
            f"device {device_id!r} is a phone: phones register through /api/v1/phone/devices",
            field="device_id",
        )
    if state != "decommissioned" and (state is not None or public_key is not None):
        raise Conflict(
            f"device {device_id!r} is already registered: decommission it first",
            field="device_id",
        )
    if issuer is None:  # the CLI's token
        return
    principal = await load_principal(conn, int(issuer))
    if principal is None or not await may_see_device(conn, principal, device_id):
        raise Conflict(
            f"device {device_id!r} is already registered: only a token of someone who may "
            "see it enrols it again",
            field="device_id",
        )


async def enrol(
    conn: AsyncConnection[Any],
    settings: Settings,
    *,
    device_id: str,
    token: str,
    public_key: bytes,
    proof: str,
    equipment_model: str | None,
    firmware: str | None,
) -> Enrolled:
    try:
        broker.check_device_id(settings, device_id)
    except broker.BrokerError as exc:
        raise ApiError(str(exc), code="invalid", field="device_id", status=422) from None
    # The proof is checked before the token is looked at: a wrong key learns nothing.
    if not proof_ok(public_key, device_id, token, proof):
        raise EnrolmentRefused(
            "the proof is not this public key's signature of the device id and token",
            field="proof",
        )
    digest = token_hash(token)
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE enrolment_token SET used_at = now(), used_by_device = %s"
            " WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()"
            " AND (device_id IS NULL OR device_id = %s)"
            " RETURNING id, account_id, equipment_model, device_group, created_by",
            (device_id, digest, device_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise EnrolmentRefused(await _why_refused(conn, digest, device_id))
        token_id, account_id, token_model, group, issuer = row
        model = token_model or equipment_model
        cur = await conn.execute(
            "SELECT d.public_key, e.state, d.kind FROM device d"
            " LEFT JOIN device_enrolment e USING (device_id) WHERE d.device_id = %s FOR UPDATE OF d",
            (device_id,),
        )
        existing = await cur.fetchone()
        if existing is not None:
            await _may_take(conn, device_id, existing, issuer)
        cur = await conn.execute(
            "INSERT INTO device_enrolment (device_id, token_id, equipment_model, device_group, firmware)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET token_id = EXCLUDED.token_id,"
            " equipment_model = EXCLUDED.equipment_model, device_group = EXCLUDED.device_group,"
            " firmware = EXCLUDED.firmware, state = 'active', enrolled_at = now(),"
            " decommissioned_at = NULL, decommissioned_by = NULL"
            " WHERE device_enrolment.state = 'decommissioned' RETURNING device_id",
            (device_id, token_id, model, group, firmware),
        )
        if await cur.fetchone() is None:  # enrolled concurrently through another token
            raise Conflict(f"device {device_id!r} is already enrolled", field="device_id")
        # telemetry's device registry: the key the gateway verifies events with
        await conn.execute(
            "INSERT INTO device (device_id, tenant, kind, public_key) VALUES (%s, %s, 'equipment', %s)"
            " ON CONFLICT (device_id) DO UPDATE SET tenant = EXCLUDED.tenant,"
            " public_key = EXCLUDED.public_key",
            (device_id, settings.tenant, public_key),
        )
        if account_id is not None:
            await _claim(conn, device_id, int(account_id), None, model)
        cur = await conn.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM ingest_message WHERE device_id = %s",
            (device_id,),
        )
        seq_row = await cur.fetchone()
        seq_start = int(seq_row[0]) if seq_row else 1
        try:
            creds = await asyncio.to_thread(_broker_account, settings, device_id)
        except broker.BrokerError as exc:
            raise Unavailable(f"the broker could not create the device's account: {exc}") from exc
    return Enrolled(device_id, settings.tenant, creds, model, account_id, seq_start)


async def _claim(
    conn: AsyncConnection[Any],
    device_id: str,
    account_id: int,
    asset_id: int | None,
    equipment_model: str | None,
) -> int:
    """Put the device on an asset of the account (an existing one, or a new one)."""
    cur = await conn.execute("SELECT id FROM assets WHERE device_id = %s", (device_id,))
    if await cur.fetchone() is not None:
        raise Conflict(f"device {device_id!r} is already on an asset", field="device_id")
    if asset_id is not None:
        cur = await conn.execute(
            "UPDATE assets SET device_id = %s, updated_at = now()"
            " WHERE id = %s AND account_id = %s AND device_id IS NULL RETURNING id",
            (device_id, asset_id, account_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise Conflict(
                f"asset {asset_id} is not a free asset of account {account_id}", field="asset_id"
            )
        return int(row[0])
    cur = await conn.execute(
        "INSERT INTO assets (account_id, device_id, equipment_model) VALUES (%s, %s, %s) RETURNING id",
        (account_id, device_id, equipment_model or "unknown"),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def claim(
    conn: AsyncConnection[Any],
    device_id: str,
    account_id: int,
    asset_id: int | None,
    equipment_model: str | None,
) -> int:
    """Claim an enrolled, unclaimed device onto an account (the caller checked the account)."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT state, equipment_model FROM device_enrolment WHERE device_id = %s FOR UPDATE",
            (device_id,),
        )
        row = await cur.fetchone()
        if row is None or row[0] != "active":
            raise NotFound(f"no enrolled device {device_id!r}", field="device_id")
        return await _claim(conn, device_id, account_id, asset_id, equipment_model or row[1])


async def decommission(
    conn: AsyncConnection[Any], settings: Settings, device_id: str, user_id: int
) -> None:
    """Revoke the broker account at once, keep every record, cancel open commands."""
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO device_enrolment (device_id, state, decommissioned_at, decommissioned_by)"
            " VALUES (%s, 'decommissioned', now(), %s)"
            " ON CONFLICT (device_id) DO UPDATE SET state = 'decommissioned',"
            " decommissioned_at = now(), decommissioned_by = EXCLUDED.decommissioned_by"
            " WHERE device_enrolment.state = 'active' RETURNING device_id",
            (device_id, user_id),
        )
        if await cur.fetchone() is None:
            raise Conflict(f"device {device_id!r} is already decommissioned", field="device_id")
        await conn.execute(
            "UPDATE device_command SET state = 'cancelled', finished_at = now(),"
            " detail = 'device decommissioned' WHERE device_id = %s AND state = 'sent'",
            (device_id,),
        )
        await conn.execute(
            "UPDATE rollout_device SET state = 'skipped' WHERE device_id = %s AND state = 'pending'",
            (device_id,),
        )
        try:
            await asyncio.to_thread(broker.revoke_device, settings, device_id)
        except broker.BrokerError as exc:
            if "has no broker account" not in str(exc):
                raise Unavailable(f"the broker could not revoke the device: {exc}") from exc
