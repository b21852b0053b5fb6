"""The tenant's settings over HTTP (crm.tenant).

GET /api/v1/tenant/settings    the default currency (and the codes it may be); anyone
                               signed in: the console preselects and formats with it
PUT /api/v1/tenant/settings    change them (admins); a code that is no ISO 4217
                               currency is a 422 naming `default_currency`
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from crm import tenant
from crm.currencies import ISO_4217
from crm.record_routes import API
from kernel.http import Access, Req, Routes

routes = Routes("tenant", "Settings of the whole tenant: the default currency")

_UNSCOPED = "tenant-wide settings; no record data"


class TenantSettingsIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default_currency: Annotated[
        str,
        msgspec.Meta(
            max_length=16,
            description="ISO 4217 code of the currency new records get when none is given",
            examples=["EUR"],
        ),
    ]


class TenantSettingsOut(msgspec.Struct, frozen=True):
    default_currency: str
    currencies: list[str]  # the ISO 4217 codes the default may be, sorted
    updated_at: datetime
    updated_by: int | None


def _out(s: tenant.TenantSettings) -> TenantSettingsOut:
    return TenantSettingsOut(s.default_currency, sorted(ISO_4217), s.updated_at, s.updated_by)


@routes.get(
    f"{API}/tenant/settings",
    access=Access.read(unscoped=_UNSCOPED),
    summary="The tenant's settings: the default currency",
)
async def get_settings(req: Req) -> TenantSettingsOut:
    async with req.connection() as conn:
        return _out(await tenant.read_settings(conn))


@routes.put(
    f"{API}/tenant/settings",
    access=Access.admin(unscoped=_UNSCOPED),
    summary="Change the tenant's settings (admins)",
    errors=(422,),
)
async def put_settings(req: Req, body: TenantSettingsIn) -> TenantSettingsOut:
    async with req.connection() as conn:
        s = await tenant.write_settings(
            conn, req.user.user_id, default_currency=body.default_currency
        )
    return _out(s)
