"""HTTP API of the caller's own notifications: list, count unread, mark read.

Every query is filtered by the caller's user id, so another user's notification answers
404 as if it did not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from kernel.errors import NotFound
from kernel.http import Access, Req, Routes
from notify import service

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


def setup(app: web.Application) -> None:
    routes.mount(app)
