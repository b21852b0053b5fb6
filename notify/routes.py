"""HTTP API of the caller's own notifications: list, count unread, mark read.

Every query is filtered by the caller's user id, so another user's notification answers
404 as if it did not exist.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from kernel.errors import NotFound, Unprocessable
from kernel.http import Access, Req, Routes
from notify import push, service

routes = Routes("notifications", "The caller's own notifications")

_OWN = "a user reads and marks only their own notifications (every query filters by them)"


class NotificationOut(msgspec.Struct, frozen=True):
    notification_id: int
    kind: str
    title: str
    body: str
    link: str | None
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class NotificationPage(msgspec.Struct, frozen=True):
    items: list[NotificationOut]
    unread: int
    next_before_id: int | None


class NotificationQuery(msgspec.Struct, frozen=True):
    unread: bool = False
    before_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class NotificationPath(msgspec.Struct, frozen=True):
    notification_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class NotificationsMarked(msgspec.Struct, frozen=True):
    marked: int


def _out(n: service.Notification) -> NotificationOut:
    return NotificationOut(
        n.notification_id, n.kind, n.title, n.body, n.link, n.urgent, n.created_at, n.read_at
    )


@routes.get(
    "/api/v1/notifications",
    access=Access.read(unscoped=_OWN),
    summary="The caller's notifications, newest first (page with next_before_id)",
)
async def list_notifications(req: Req, query: NotificationQuery) -> NotificationPage:
    uid = req.user.user_id
    async with req.connection() as conn:
        items = await service.list_for_user(
            conn, uid, unread_only=query.unread, before_id=query.before_id, limit=query.limit
        )
        unread = await service.unread_count(conn, uid)
    more = len(items) == query.limit
    return NotificationPage(
        [_out(n) for n in items], unread, items[-1].notification_id if more else None
    )


@routes.post(
    "/api/v1/notifications/{notification_id}/read",
    access=Access.read(unscoped=_OWN),
    summary="Mark one of the caller's notifications read",
)
async def read_one(req: Req, path: NotificationPath) -> NotificationOut:
    uid = req.user.user_id
    async with req.connection() as conn:
        if not await service.mark_read(conn, uid, path.notification_id):
            raise NotFound(f"notification {path.notification_id} not found")
        n = await service.get_for_user(conn, uid, path.notification_id)
    assert n is not None
    return _out(n)


@routes.post(
    "/api/v1/notifications/read-all",
    access=Access.read(unscoped=_OWN),
    summary="Mark every notification of the caller read",
)
async def read_all(req: Req) -> NotificationsMarked:
    async with req.connection() as conn:
        return NotificationsMarked(await service.mark_all_read(conn, req.user.user_id))


# --------------------------------------------------------------------------- Web Push

DeviceKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
B64 = r"^[A-Za-z0-9_-]+={0,2}$"


class PushKey(msgspec.Struct, frozen=True):
    application_server_key: str


class PushKeys(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    p256dh: Annotated[str, msgspec.Meta(min_length=40, max_length=200, pattern=B64)]
    auth: Annotated[str, msgspec.Meta(min_length=8, max_length=100, pattern=B64)]


class PushSubscriptionIn(msgspec.Struct, frozen=True):
    """A browser's PushSubscription.toJSON() and the device it belongs to."""

    device_key: DeviceKey
    endpoint: Annotated[str, msgspec.Meta(min_length=8, max_length=1000)]
    keys: PushKeys
    expirationTime: int | None = None


class PushSubscriptionOut(msgspec.Struct, frozen=True):
    subscription_id: int
    device_key: str


class PushDevicePath(msgspec.Struct, frozen=True):
    device_key: DeviceKey


@routes.get(
    "/api/v1/notifications/push/key",
    access=Access.read(unscoped="the installation's public VAPID key: no records"),
    summary="The VAPID public key (applicationServerKey) to subscribe with",
)
async def push_key(req: Req) -> PushKey:
    return PushKey(await asyncio.to_thread(push.application_server_key, req.settings))


@routes.post(
    "/api/v1/notifications/push/subscriptions",
    access=Access.read(unscoped=_OWN),
    summary="Subscribe one of the caller's devices to Web Push (replaces its earlier one)",
    status=201,
)
async def push_subscribe(req: Req, body: PushSubscriptionIn) -> PushSubscriptionOut:
    try:
        await asyncio.to_thread(push.check_endpoint, body.endpoint, req.settings)
    except push.PushError as exc:
        raise Unprocessable(str(exc), field=exc.field) from None
    async with req.connection() as conn, conn.transaction():
        sid = await push.subscribe(
            conn, req.user.user_id, body.device_key, body.endpoint, body.keys.p256dh, body.keys.auth
        )
    return PushSubscriptionOut(sid, body.device_key)


@routes.delete(
    "/api/v1/notifications/push/subscriptions/{device_key}",
    access=Access.read(unscoped=_OWN),
    summary="Unsubscribe one of the caller's devices",
    status=204,
    errors=(404,),
)
async def push_unsubscribe(req: Req, path: PushDevicePath) -> None:
    async with req.connection() as conn:
        if not await push.unsubscribe(conn, req.user.user_id, path.device_key):
            raise NotFound(f"no push subscription for device {path.device_key!r}")


def setup(app: web.Application) -> None:
    routes.mount(app)
